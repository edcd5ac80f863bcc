#!/bin/sh
# ensure-deps.sh: make sure the daemons and tools Moat's tests run for real are installed.
#
# Checks for redis-server, redis-cli, clamd, clamscan, spamd, spamassassin, openssl,
# prometheus and promtool (the observability tests), docker-compose (validates the compose
# file) and cc (Debian package gcc: builds the allocator trim, scripts/build-native.sh). With
# --scanners (what `npm start` needs for its local scanners) it checks only clamd and spamd
# (Debian packages clamav-daemon, spamd, and spamassassin, which spamd runs); --clamd or
# --spamd narrow that to one of them, and --cc asks for the compiler alone (`npm start` gives
# it with or without the scanners). When all are there it does nothing (fast, no
# network). When some are missing:
#   - as root: one `apt-get update`, then installs the Debian packages that provide them;
#   - otherwise: prints the packages to install and exits 1.
#
# It never starts a system service. While it installs, a temporary policy-rc.d forbids the
# packages from starting their daemons (invoke-rc.d and deb-systemd-invoke obey it); the tests
# run redis-server, clamd and spamd themselves, with their own configs on random loopback ports,
# so a system copy that is (or is not) running does not matter either way.
#
# With --bench it also wants smtp-source and smtp-sink (Debian package postfix), the
# benchmark's load generator and internal-server stand-in. Postfix is installed with debconf's
# "No configuration": no main.cf is written, so no Postfix daemon runs or listens afterwards
# (the benchmark starts smtp-sink itself on a loopback port and stops it).
#
# Usage: sh scripts/ensure-deps.sh [--check] [--bench | --scanners | --clamd | --spamd | --cc]
#   --check: report only, never install

set -eu

usage="usage: ensure-deps.sh [--check] [--bench | --scanners | --clamd | --spamd | --cc]"
check_only=no
bench=no
clamd=no
spamd=no
cc=no
for arg in "$@"; do
    case "$arg" in
        --check) check_only=yes ;;
        --bench) bench=yes ;;
        --scanners) clamd=yes; spamd=yes ;;
        --clamd) clamd=yes ;;
        --spamd) spamd=yes ;;
        --cc) cc=yes ;;
        *) echo "$usage" >&2; exit 64 ;;
    esac
done

# command:package pairs. Daemons live in /usr/sbin, which a non-root PATH may lack.
if [ "$clamd" = yes ] || [ "$spamd" = yes ] || [ "$cc" = yes ]; then
    # Only what `npm start` asked for: no test tools.
    NEEDS=""
    if [ "$clamd" = yes ]; then NEEDS="clamd:clamav-daemon"; fi
    if [ "$spamd" = yes ]; then NEEDS="$NEEDS spamd:spamd spamassassin:spamassassin"; fi
    if [ "$cc" = yes ]; then NEEDS="$NEEDS cc:gcc"; fi
else
    NEEDS="redis-server:redis-server redis-cli:redis-tools clamd:clamav-daemon clamscan:clamav
spamd:spamd spamassassin:spamassassin openssl:openssl prometheus:prometheus
promtool:prometheus docker-compose:docker-compose cc:gcc"
fi
if [ "$bench" = yes ]; then NEEDS="$NEEDS smtp-source:postfix smtp-sink:postfix"; fi

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing_packages=""
missing_commands=""
for pair in $NEEDS; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! have "$cmd"; then
        missing_commands="$missing_commands $cmd"
        case " $missing_packages " in
            *" $pkg "*) ;;
            *) missing_packages="$missing_packages $pkg" ;;
        esac
    fi
done

if [ -z "$missing_packages" ]; then
    exit 0
fi

echo "ensure-deps: missing:$missing_commands" >&2
if [ "$check_only" = yes ] || [ "$(id -u)" != 0 ]; then
    echo "ensure-deps: install as root with:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing_packages" >&2
    exit 1
fi

# Forbid service starts during the install, unless the machine already has its own policy.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Temporary, from Moat scripts/ensure-deps.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    made_policy=yes
fi
cleanup() {
    if [ "$made_policy" = yes ]; then rm -f "$policy"; fi
}
trap cleanup EXIT INT TERM

echo "ensure-deps: installing$missing_packages" >&2
case " $missing_packages " in
    *" postfix "*)
        # Only the client tools are wanted: no mail system configuration, no daemon.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        ;;
esac
apt-get update
# shellcheck disable=SC2086 # the package list is meant to split into words
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing_packages

# Say clearly if the install did not bring what we need.
still_missing=""
for pair in $NEEDS; do
    cmd=${pair%%:*}
    have "$cmd" || still_missing="$still_missing $cmd"
done
if [ -n "$still_missing" ]; then
    echo "ensure-deps: still missing after install:$still_missing" >&2
    exit 1
fi
echo "ensure-deps: done" >&2
