#!/usr/bin/env bash
# systemd.sh — static checks of deploy/systemd/retrain-daemon.service (works without systemd as PID 1).
#
#   1. `systemd-analyze verify` on the unit, and on the unit with the GPU drop-in (gpu.conf): it exits 0
#      even on unknown keys and bad values and only prints them, so ANY output is a failure.
#      verify also insists that ExecStart='s executable exists on the checking machine (`--root=` does not
#      change that: the command is still looked up on the host). If /usr/bin/dotnet is missing here, the
#      check runs on a temporary copy whose ExecStart= points at a stub executable of the same name in a
#      temporary directory; nothing else in the copy changes.
#   2. `systemd-analyze security --offline=yes --threshold=25` (tenths: 2.5) scores the unit's sandbox; the
#      score is printed, and the check fails above 2.5. The GPU variant is scored against the same bound.
# Options: --threshold X.Y   the highest acceptable exposure (default 2.5)
set -euo pipefail
cd "$(dirname "$0")/../.."
unit_src=deploy/systemd/retrain-daemon.service
dropin_src=deploy/systemd/gpu.conf
threshold=2.5
while (($#)); do
    case $1 in
        --threshold) threshold=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "systemd.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v systemd-analyze >/dev/null || { echo "systemd.sh: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
tenths=$(awk -v t="$threshold" 'BEGIN { printf "%d", t * 10 + 0.5 }')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# The unit under its real name (verify and security derive the unit name from the file name).
mkdir -p "$tmp/plain" "$tmp/gpu/retrain-daemon.service.d"
exe=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit_src" | head -n 1)
if [[ -x $exe ]]; then
    cp "$unit_src" "$tmp/plain/retrain-daemon.service"
else
    mkdir -p "$tmp/stub$(dirname "$exe")"
    printf '#!/bin/sh\nexit 0\n' >"$tmp/stub$exe"; chmod +x "$tmp/stub$exe"
    sed "s#^ExecStart=\\([-@:+!]*\\)$exe#ExecStart=\\1$tmp/stub$exe#" "$unit_src" >"$tmp/plain/retrain-daemon.service"
    echo "systemd.sh: $exe does not exist here; verifying a copy whose ExecStart= runs a stub at $tmp/stub$exe"
fi
cp "$tmp/plain/retrain-daemon.service" "$tmp/gpu/retrain-daemon.service"
cp "$dropin_src" "$tmp/gpu/retrain-daemon.service.d/gpu.conf"

for variant in plain gpu; do
    label=$([[ $variant == plain ]] && echo "retrain-daemon.service" || echo "retrain-daemon.service + gpu.conf")
    out=$(cd "$tmp/$variant" && systemd-analyze verify ./retrain-daemon.service 2>&1) || true
    if [[ -n $out ]]; then
        echo "systemd.sh: FAIL: systemd-analyze verify $label printed:"; printf '%s\n' "$out" | sed 's/^/  /'
        status=1
    else
        echo "systemd.sh: systemd-analyze verify $label: no output (ok)"
    fi

    rc=0
    out=$(cd "$tmp/$variant" && systemd-analyze security --offline=yes --threshold="$tenths" --no-pager ./retrain-daemon.service 2>&1) || rc=$?
    score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [[ -z $score ]]; then
        echo "systemd.sh: FAIL: no score from systemd-analyze security for $label:"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/  /'
        status=1
    elif ((rc != 0)) || awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s > t) }'; then
        echo "systemd.sh: FAIL: $label exposure $score > $threshold"
        printf '%s\n' "$out" | grep '✗' | sed 's/^/  /'
        status=1
    else
        echo "systemd.sh: systemd-analyze security --offline=yes $label: exposure $score (<= $threshold, ok)"
    fi
done
exit $status
