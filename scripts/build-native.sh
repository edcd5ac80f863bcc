#!/bin/sh
# Builds native/malloc-trim.c into dist/native/malloc-trim.node, the one native part of Moat
# (src/runtime/allocator-trim.ts says what it is for). Run by scripts/bootstrap.sh after the
# TypeScript build and by `npm run build`; does nothing when the module is newer than its source.
#
# It needs a C compiler (`cc`, or $CC) and Node's headers, taken from the Node that runs the
# gateway (the npm `node` package keeps them in its platform package; an installed Node under
# include/node beside its bin/). Node-API is stable across Node versions, so any of them will do.
# Without either the gateway still runs, without the trim, and says so when it starts; with
# --required (tests, benchmark) this script fails instead.
#
# Usage: sh scripts/build-native.sh [--required]
set -eu
cd "$(dirname "$0")/.."
required=no
if [ "${1:-}" = --required ]; then required=yes; fi

src=native/malloc-trim.c
out=dist/native/malloc-trim.node
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then exit 0; fi

give_up() {
  echo "moat: $1; the gateway will run without giving freed memory back (malloc_trim)" >&2
  if [ "$required" = yes ]; then exit 1; fi
  exit 0
}

cc="${CC:-cc}"
command -v "$cc" >/dev/null 2>&1 || give_up "no C compiler ($cc) to build $src"

node="${NODE:-node_modules/.bin/node}"
[ -x "$node" ] || node=node
# The first include/node with node_api.h: beside the running Node, in the npm `node` package's
# platform package, then the system's.
headers="$("$node" -e '
  const { existsSync, realpathSync } = require("node:fs");
  const { join, resolve } = require("node:path");
  const exe = realpathSync(process.execPath);
  const platform = `node-${process.platform}-${process.arch}`;
  const found = [
    resolve(exe, "../../include/node"),
    resolve(exe, "../../node_modules", platform, "include/node"),
    resolve("node_modules/node/node_modules", platform, "include/node"),
    "/usr/local/include/node", "/usr/include/node",
  ].find((dir) => existsSync(join(dir, "node_api.h")));
  if (found) console.log(found);
')" || true
[ -n "$headers" ] || give_up "no Node headers (node_api.h) to build $src"

mkdir -p dist/native
if ! "$cc" -shared -fPIC -O2 -Wall -Wextra -DNODE_GYP_MODULE_NAME=malloc_trim -I"$headers" \
  "$src" -o "$out.tmp"; then
  rm -f "$out.tmp"
  give_up "$cc could not build $src"
fi
mv "$out.tmp" "$out"
