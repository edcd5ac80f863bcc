#!/bin/sh
# Brings a fresh clone to a runnable state, then runs what was asked: start, test, bench or
# soak.
#
# 1. npm packages from the lockfile, which include Node 24 itself (the `node` package): the
#    machine's own Node may be older, so everything below runs on node_modules/.bin/node.
# 2. Debian packages the tests and the local scanners need (scripts/ensure-deps.sh installs
#    them when running as root, and otherwise says what to install). `start` needs only the
#    scanners it will run itself: clamd when MOAT_CLAMD is unset, spamd when MOAT_SPAMD is
#    unset, neither with MOAT_LOCAL_SCANNERS=off (an address set in config/moat.ini instead of
#    the environment is not seen here, so the package is then installed needlessly), and the C
#    compiler for step 3. If they cannot be installed it goes on, and the gateway then says
#    which scanner is missing, or that it runs without the allocator trim.
# 3. The TypeScript build, into dist/, and the one native module (scripts/build-native.sh).
set -eu
cd "$(dirname "$0")/.."
what="${1:-start}"
shift || true

# 1. npm packages, reinstalled when the lockfile changed since the last install.
if [ ! -x node_modules/.bin/node ] || [ ! -f node_modules/.package-lock.json ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "moat: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
NODE="$(pwd)/node_modules/.bin/node"
if ! "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)'; then
  echo "moat: node_modules/.bin/node is not Node 24; run: rm -rf node_modules && npm ci" >&2
  exit 1
fi

# 2. Debian packages (only what this command needs).
case "$what" in
  test) sh scripts/ensure-deps.sh ;;
  bench|soak) sh scripts/ensure-deps.sh --bench ;;
  start)
    wanted="--cc"
    if [ "${MOAT_LOCAL_SCANNERS:-auto}" != off ]; then
      if [ -z "${MOAT_CLAMD:-}" ]; then wanted="$wanted --clamd"; fi
      if [ -z "${MOAT_SPAMD:-}" ]; then wanted="$wanted --spamd"; fi
    fi
    # shellcheck disable=SC2086 # one to three flags, meant to split into words
    sh scripts/ensure-deps.sh $wanted \
      || echo "moat: continuing without the missing packages" >&2
    ;;
esac

# 3. Build: TypeScript, then the allocator trim (optional for start, required otherwise).
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.json
case "$what" in
  start) NODE="$NODE" sh scripts/build-native.sh ;;
  *) NODE="$NODE" sh scripts/build-native.sh --required ;;
esac

# The gateway's environment and Node flags are src/runtime/node-flags.ts's (a test keeps the
# two the same); an operator's own MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ win.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
case "$what" in
  start) exec "$NODE" --max-semi-space-size=8 --expose-gc dist/src/runtime/main.js "$@" ;;
  test) exec "$NODE" dist/test/run-tests.js "$@" ;;
  bench) exec "$NODE" dist/bench/run.js "$@" ;;
  soak) exec "$NODE" dist/bench/soak.js "$@" ;;
  *) echo "usage: bootstrap.sh start|test|bench|soak" >&2; exit 64 ;;
esac
