#!/usr/bin/env bash
# hardened-run.sh — run the daemon under the restrictions of deploy/systemd/retrain-daemon.service as far
# as a machine without systemd as PID 1 allows, and prove that it ingests, trains a tiny model and serves.
#
# As root (Debian 12):
#   1. installs the published daemon into a root-owned, read-only directory (like /opt/retrain-daemon);
#   2. creates a throw-away system user (no home, no shell) and a state directory owned by it (0700) —
#      the only place it can write (StateDirectory=);
#   3. starts a private RabbitMQ node on loopback (deploy/rabbitmq/local-broker.sh);
#   4. starts `retrain-daemon run` in a sandbox that mirrors the unit:
#        mount namespace (unshare -m):  every mount read-only except the state directory (ProtectSystem=strict
#                                       + ReadWritePaths=), tmpfs on /tmp and /var/tmp (PrivateTmp=), empty
#                                       read-only /home, /root, /run/user (ProtectHome=), a minimal /dev with
#                                       null/zero/full/random/urandom/tty + /dev/shm (PrivateDevices=), /proc
#                                       with hidepid=invisible (ProtectProc=invisible), /proc/sys read-only
#                                       (ProtectKernelTunables=), credentials read-only, owned by the user
#                                       (LoadCredential= / $CREDENTIALS_DIRECTORY)
#        setpriv:                       the user's uid/gid, no supplementary groups, no_new_privs, empty
#                                       bounding and inheritable capability sets (User=, NoNewPrivileges=,
#                                       CapabilityBoundingSet=)
#        seccomp (python3-seccomp):     the unit's SystemCallFilter= (@system-service minus the ~ groups,
#                                       SystemCallErrorNumber=EPERM), SystemCallArchitectures=native and
#                                       RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 (others EAFNOSUPPORT)
#        umask 0077, HOME=/nonexistent  (UMask=; stricter than the unit: nothing may need a home)
#      with the loop on and a tiny DCGAN budget (other models Retrain=false), API keys and an admin key;
#   5. publishes 2,000 Fashion-MNIST images, waits until `runs list --json` shows a promoted run, and asks
#      POST /v1/models/fashion-mnist/generate for images (200 with the key, 401 without);
#   6. asserts: the user cannot write to the install directory; inside the sandbox it cannot write
#      anywhere but the state directory (/var/tmp, /etc, its HOME, the install directory are refused);
#      every file the daemon created is 0600 and every directory 0700, all owned by the user; the daemon
#      logged no permission or read-only-file-system error; SIGTERM stops it with exit 0;
#   7. cleans up (daemon, broker, user, directories) on every exit.
# Exits non-zero on any failure.
#
# Options: --build-output DIR  use this `dotnet publish` output instead of publishing (it is copied anyway)
#          --keep              keep the work directory (logs, state) for inspection
#          --timeout S         seconds to wait for the promoted run (default 600)
# What systemd itself adds and this cannot: the cgroup (TasksMax=, KillMode=), PrivateUsers=, PrivateIPC=,
# ProtectHostname=, ProtectClock=, RestrictNamespaces=, LockPersonality=, LoadCredential='s ramfs, READY=1
# (sd_notify is not sent without systemd as the parent). deploy/checks/systemd.sh checks the unit file.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

build_output=""
keep=0
timeout=600
while (($#)); do
    case $1 in
        --build-output) build_output=$(readlink -f "$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        --timeout) timeout=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "hardened-run: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'hardened-run: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
[[ $(id -u) == 0 ]] || fail "must run as root (it creates a user and mount namespaces)"
for tool in unshare setpriv runuser curl useradd mknod; do command -v "$tool" >/dev/null || fail "$tool is missing"; done
[[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] || fail "dataset-fashion-mnist is not installed"
if ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
    log "installing python3-seccomp (the syscall filter of the sandbox)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-seccomp >/dev/null
fi
dotnet_host=$(readlink -f /usr/bin/dotnet)
dotnet_root=$(dirname "$dotnet_host")
t_all=$(now)

# ---------------------------------------------------------------- work area and cleanup
# Not under /tmp: the sandbox mounts a private /tmp over it.
base=$(mktemp -d /var/lib/retrain-hardened.XXXXXX)
chmod 0755 "$base"
user=rtd-hardened-$$
install_dir=$base/opt/retrain-daemon
state=$base/state
creds=$base/credentials
broker_dir=$base/broker
daemon_log=$base/daemon.log
pid=""
broker_started=""
user_created=""
cleanup() {
    local rc=$?
    set +e
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null; fi
    if [[ -n $broker_started ]]; then bash deploy/rabbitmq/local-broker.sh stop --dir "$broker_dir" --port "$broker_port" >/dev/null 2>&1; fi
    if ((rc != 0)) && [[ -f $daemon_log ]]; then log "last lines of the daemon's log:"; tail -n 40 "$daemon_log" >&2; fi
    if [[ -n $user_created ]]; then userdel "$user" 2>/dev/null; fi
    if ((keep)); then log "kept $base"; else rm -rf "$base"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1000))") 2>/dev/null; then echo "$p"; return; fi
    done
    fail "no free port"
}
broker_port=$(free_port)
http_port=$(free_port)

# ---------------------------------------------------------------- 1. install (root-owned, read-only)
t=$(now)
if [[ -z $build_output ]]; then
    build_output=$base/publish
    log "publishing src/RetrainDaemon (Release, linux-x64, framework-dependent)"
    flock /tmp/retrain-build.lock dotnet publish src/RetrainDaemon -c Release -r linux-x64 --self-contained false \
        -o "$build_output" --nologo -v quiet >"$base/publish.log" 2>&1 || { cat "$base/publish.log" >&2; fail "dotnet publish failed"; }
fi
[[ -f $build_output/retrain-daemon.dll ]] || fail "$build_output has no retrain-daemon.dll"
mkdir -p "$install_dir"
cp -a "$build_output/." "$install_dir/"
chown -R root:root "$base/opt"
chmod -R u=rwX,go=rX "$base/opt"
[[ -z ${build_output#"$base/publish"} ]] && rm -rf "$build_output"
log "installed into $install_dir ($(du -sh "$install_dir" | cut -f1), $(since "$t") s)"

# ---------------------------------------------------------------- 2. user, state, credentials
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$user"
user_created=1
uid=$(id -u "$user"); gid=$(id -g "$user")
install -d -o "$user" -g "$user" -m 0700 "$state"
api_key=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
admin_key=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
install -d -o "$user" -g "$user" -m 0500 "$creds"
printf 'guest\n' >"$creds/broker-password"   # the private broker's loopback guest account
printf '%s\n' "$api_key" >"$creds/api-keys"
printf '%s\n' "$admin_key" >"$creds/admin-key"
chown "$user:$user" "$creds"/*; chmod 0400 "$creds"/*

# ---------------------------------------------------------------- 3. broker
bash deploy/rabbitmq/local-broker.sh start --dir "$broker_dir" --port "$broker_port" >"$base/broker.log" 2>&1 \
    || { cat "$base/broker.log" >&2; fail "the private broker did not start"; }
broker_started=1
log "private broker on 127.0.0.1:$broker_port"

# ---------------------------------------------------------------- the sandbox
# Syscall filter as systemd builds it from the unit's SystemCallFilter= lines.
unit=deploy/systemd/retrain-daemon.service
mapfile -t filter_lines < <(sed -n 's/^SystemCallFilter=//p' "$unit")
((${#filter_lines[@]})) || fail "$unit has no SystemCallFilter="
expand_group() { systemd-analyze syscall-filter --no-pager "$1" | sed -n 's/^    \([a-z_0-9@-]*\)$/\1/p'; }
expand() { # recursively expand @groups into syscall names
    local item sub
    for item in "$@"; do
        if [[ $item == @* ]]; then mapfile -t sub < <(expand_group "$item"); expand "${sub[@]}"; else echo "$item"; fi
    done
}
allow=() deny=()
for line in "${filter_lines[@]}"; do
    if [[ $line == ~* ]]; then read -ra items <<<"${line#\~}"; deny+=("${items[@]}"); else read -ra items <<<"$line"; allow+=("${items[@]}"); fi
done
mapfile -t allowed < <(expand "${allow[@]}" | sort -u)
mapfile -t denied < <(expand "${deny[@]}" | sort -u)
comm -23 <(printf '%s\n' "${allowed[@]}") <(printf '%s\n' "${denied[@]}") >"$base/syscalls.allow"
log "seccomp: $(wc -l <"$base/syscalls.allow") syscalls allowed (${filter_lines[*]})"

cat >"$base/seccomp-exec.py" <<'EOF'
# Applies the unit's syscall filter and address-family restriction, then execs the command.
import errno, os, sys, seccomp
allow = [l.strip() for l in open(sys.argv[1]) if l.strip()]
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))  # SystemCallErrorNumber=EPERM
unknown = 0
for name in allow:
    if name == "socket":
        continue
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        unknown += 1  # names this kernel/libseccomp does not know (other architectures, very new calls)
# RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6: socket() with any other family fails with EAFNOSUPPORT.
for family in (1, 2, 10):
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, family))
f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GT, 10))
f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.LT, 1))
for family in range(3, 10):
    f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family))
f.load()  # SystemCallArchitectures=native: libseccomp's filter only admits the native architecture
os.execv(sys.argv[2], sys.argv[2:])
EOF

# A mount namespace shaped like the unit's; then the user, the capabilities, the filter, the command.
cat >"$base/sandbox.sh" <<'EOF'
#!/bin/bash
# sandbox.sh STATE CREDS BASE UID GID -- COMMAND...   (runs as root in a fresh mount namespace)
set -euo pipefail
state=$1 creds=$2 base=$3 uid=$4 gid=$5; shift 6
# ReadWritePaths=: the state directory becomes its own mount before everything goes read-only.
mount --bind "$state" "$state"
# ProtectSystem=strict: every other mount read-only (proc, sys, dev are handled below).
findmnt -rn -o TARGET | sort -u | while read -r target; do
    target=$(printf '%b' "$target")
    case $target in /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | "$state") continue ;; esac
    mount -o remount,bind,ro "$target" 2>/dev/null || mount --bind -o ro "$target" "$target" 2>/dev/null || true
done
mount -o remount,bind,rw "$state"
mount --bind -o ro "$creds" "$creds" 2>/dev/null || mount -o remount,bind,ro "$creds" 2>/dev/null || true
# PrivateTmp=
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
# ProtectHome=yes
for d in /home /root /run/user; do [[ -d $d ]] && mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; done
# PrivateDevices=yes: a fresh /dev with the API devices only.
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev
mknod -m 0666 /dev/null c 1 3; mknod -m 0666 /dev/zero c 1 5; mknod -m 0666 /dev/full c 1 7
mknod -m 0666 /dev/random c 1 8; mknod -m 0666 /dev/urandom c 1 9; mknod -m 0666 /dev/tty c 5 0
mkdir -m 1777 /dev/shm && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
# ProtectProc=invisible, ProtectKernelTunables= (/proc/sys, /sys read-only).
mount -t proc -o hidepid=invisible,nosuid,nodev,noexec proc /proc
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro /sys 2>/dev/null || true
umask 0077
exec setpriv --reuid "$uid" --regid "$gid" --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
    /usr/bin/python3 -I "$base/seccomp-exec.py" "$base/syscalls.allow" "$@"
EOF
chmod 0755 "$base/sandbox.sh"
chmod 0644 "$base/seccomp-exec.py" "$base/syscalls.allow"

# The environment the unit gives the daemon (credentials, state paths, ORT telemetry off), nothing inherited from root.
daemon_env=(
    /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent TMPDIR=/tmp LANG=C.UTF-8 DOTNET_ROOT="$dotnet_root"
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 ORT_DISABLE_TELEMETRY=1
    RETRAIN__Broker__PasswordFile="$creds/broker-password"
    RETRAIN__Serving__ApiKeysFile="$creds/api-keys"
    RETRAIN__Serving__AdminKeyFile="$creds/admin-key"
    RETRAIN__Store__Path="$state/retrain.db"
    RETRAIN__Registry__Root="$state/registry"
    RETRAIN__Loop__RunsDirectory="$state/runs"
    RETRAIN__Loop__AnalysisDirectory="$state/analysis"
    RETRAIN__Loop__SchedulerStore="$state/scheduler.db"
    RETRAIN__Evaluation__StatisticsCache="$state/reference-stats"
)
sandboxed() { # run a command in the sandbox (foreground), cwd = state
    (cd "$state" && unshare --mount --propagation private -- "$base/sandbox.sh" "$state" "$creds" "$base" "$uid" "$gid" -- "$@")
}
as_user() { # run a command as the user without the sandbox (what an operator does: runuser -u retrain-daemon)
    (cd "$state" && setpriv --reuid "$uid" --regid "$gid" --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
        "${daemon_env[@]}" /bin/bash -c 'umask 0077; exec "$@"' _ "$@")
}

# ---------------------------------------------------------------- 6a. what the user may write
if as_user touch "$install_dir/probe" 2>/dev/null || as_user touch "$install_dir/extractor/probe" 2>/dev/null; then
    fail "the user can write to the install directory"
fi
sandboxed /bin/sh -c '
    for p in "$1" /var/tmp /etc /nonexistent /usr/local /var/lib /dev/shm/../x; do
        if : 2>/dev/null >"$p/hardened-probe"; then echo "writable: $p"; fi
    done
    : >"$2/.probe" && rm "$2/.probe" || echo "NOT writable: state"
    : >/tmp/.probe && rm /tmp/.probe || echo "NOT writable: private /tmp"
    [ -z "$(ls -A /root 2>/dev/null)" ] || echo "visible: /root"
    [ ! -e /dev/sda ] && [ ! -e /dev/vda ] && [ ! -e /dev/mem ] || echo "visible: block or memory devices"
    [ ! -e /proc/1 ] || echo "visible: other processes in /proc (pid 1)"
' _ "$install_dir" "$state" >"$base/probe.out" 2>&1 || true
if [[ -s $base/probe.out ]]; then cat "$base/probe.out" >&2; fail "the sandbox is not shaped like the unit"; fi
log "sandbox probe: only the state directory and the private /tmp are writable; /root empty, no disks, no foreign processes"

# ---------------------------------------------------------------- 4. the daemon
settings=(
    --set "Broker:Endpoints:0=127.0.0.1:$broker_port" --set "Http:Urls=http://127.0.0.1:$http_port"
    --set Loop:Enabled=true --set Loop:CheckInterval=00:00:01 --set Serving:Enabled=true --set Serving:Models:0=fashion-mnist
    --set Evaluation:SampleCount=500
    --set Models:fashion-vae:Retrain=false --set Models:fortunes:Retrain=false --set Models:en-de:Retrain=false
    # The tiny DCGAN of tests/RetrainDaemon.IntegrationTests/Loop/ContinuousLoopTests.cs (seconds of training,
    # a gate a trained generator passes and an untrained one fails on FID).
    --set Models:fashion-mnist:Retrain=true --set Models:fashion-mnist:Training:Steps=150
    --set Models:fashion-mnist:Training:FineTuneSteps=60 --set Models:fashion-mnist:Training:Width=16
    --set Models:fashion-mnist:Training:MinTrainingSamples=1000 --set Models:fashion-mnist:Training:MinHoldoutSamples=50
    --set Models:fashion-mnist:Triggers:MinNewSamples=1500 --set Models:fashion-mnist:Triggers:Cooldown=00:00:01
    --set Models:fashion-mnist:Gate:Checks:0:Metric=fid --set Models:fashion-mnist:Gate:Checks:0:Max=400
    --set Models:fashion-mnist:Gate:Checks:0:MaxRegressionRelative=1.0
    --set Models:fashion-mnist:Gate:Checks:1:Metric=is --set Models:fashion-mnist:Gate:Checks:1:Min=1.0
    --set Models:fashion-mnist:Gate:Checks:2:Metric=class_coverage --set Models:fashion-mnist:Gate:Checks:2:Min=0.1
    --set Models:fashion-mnist:Gate:Checks:3:Metric=memorized_share --set Models:fashion-mnist:Gate:Checks:3:Max=0.5
)
t_start=$(now)
(cd "$state" && exec unshare --mount --propagation private -- "$base/sandbox.sh" "$state" "$creds" "$base" "$uid" "$gid" -- \
    "${daemon_env[@]}" /usr/bin/dotnet "$install_dir/retrain-daemon.dll" run "${settings[@]}") >"$daemon_log" 2>&1 &
pid=$!
ready_body=""
for _ in $(seq 1 240); do
    kill -0 "$pid" 2>/dev/null || fail "the daemon exited during start-up"
    ready_body=$(curl -s "http://127.0.0.1:$http_port/v2/health/ready" 2>/dev/null || true)
    [[ $ready_body == *'"ingestion":"consuming"'* ]] && break
    sleep 0.5
done
[[ $ready_body == *'"ingestion":"consuming"'* ]] || fail "ingestion did not start within 120 s: $ready_body"
[[ $(awk '/^Uid:/ { print $2 }' "/proc/$pid/status") == "$uid" ]] || fail "the daemon does not run as $user"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail "no_new_privs is not set"
grep -q '^CapBnd:[[:space:]]*0000000000000000' "/proc/$pid/status" || fail "the capability bounding set is not empty"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "no seccomp filter"
log "daemon pid $pid as $user (uid $uid; no_new_privs, no capabilities, seccomp filter) consuming after $(since "$t_start") s"

# ---------------------------------------------------------------- 5. ingest, train, serve
t=$(now)
(mkdir -p "$base/producer" && cd "$base/producer" && /usr/bin/dotnet "$install_dir/retrain-daemon.dll" publish fashion-mnist --count 2000 \
    --set "Broker:Endpoints:0=127.0.0.1:$broker_port") >"$base/publish-data.log" 2>&1 \
    || { cat "$base/publish-data.log" >&2; fail "publishing 2,000 images failed"; }
log "published 2,000 Fashion-MNIST images in $(since "$t") s"

t=$(now)
promoted=""
while (($(printf '%.0f' "$(since "$t")") < timeout)); do
    kill -0 "$pid" 2>/dev/null || fail "the daemon exited while training"
    runs=$(as_user /usr/bin/dotnet "$install_dir/retrain-daemon.dll" runs list --model fashion-mnist --json --set "Store:Path=$state/retrain.db" 2>/dev/null || true)
    if [[ $runs == *'"status": "promoted"'* ]]; then promoted=1; break; fi
    if [[ $runs =~ \"status\":\ \"(rejected|failed)\" ]]; then printf '%s\n' "$runs" >&2; fail "the fine-tune ended ${BASH_REMATCH[1]}"; fi
    sleep 2
done
[[ -n $promoted ]] || fail "no promoted run within $timeout s"
train_s=$(since "$t")
log "a promoted run in the ledger $train_s s after publishing: $(printf '%s' "$runs" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r.get("run_id"), r.get("status"), "v%s" % r.get("version"))' 2>/dev/null || echo '?')"

t=$(now)
code=""
for _ in $(seq 1 120); do
    code=$(curl -s -o "$base/generate.json" -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/v1/models/fashion-mnist/generate" \
        -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' -d '{"count":2,"format":"json","seed":3}' || true)
    [[ $code == 200 ]] && break
    sleep 0.5
done
[[ $code == 200 ]] || fail "generate answered $code: $(cat "$base/generate.json" 2>/dev/null)"
grep -q '"generation_ids"' "$base/generate.json" || fail "generate answered 200 without generation_ids"
log "POST /v1/models/fashion-mnist/generate: 200 ($(since "$t") s after the promotion was seen), $(wc -c <"$base/generate.json") bytes"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$http_port/v1/models/fashion-mnist/generate" \
    -H 'Content-Type: application/json' -d '{"count":1}' || true)
[[ $code == 401 ]] || fail "generate without the API key answered $code, expected 401"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/v2/health/ready")
[[ $code == 200 ]] || fail "readiness answered $code after the promotion"
log "without the API key: 401; readiness: 200"

# ---------------------------------------------------------------- stop
t=$(now)
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=""
((rc == 0)) || fail "the daemon exited with $rc on SIGTERM"
log "SIGTERM: exit 0 after $(since "$t") s"

# ---------------------------------------------------------------- 6b. what it wrote
bad=$(find "$state" -mindepth 1 \( ! -user "$user" -o \( -type f -perm /077 \) -o \( -type d ! -perm 0700 \) \) -printf '%M %u %p\n' | head -20)
[[ -z $bad ]] || { printf '%s\n' "$bad" >&2; fail "files in the state directory not owned by $user or not 0600/0700"; }
nfiles=$(find "$state" -type f | wc -l); ndirs=$(find "$state" -mindepth 1 -type d | wc -l)
log "state: $nfiles files (all 0600), $ndirs directories (all 0700), $(du -sh "$state" | cut -f1), all owned by $user: $(ls "$state" | tr '\n' ' ')"
stray=$(find "$state" -maxdepth 1 -name '.*' -printf '%f ' )
[[ -z $stray ]] || fail "something wrote dot-files into the working directory (a HOME or cache?): $stray"
if grep -Ei 'permission denied|read-only file system|operation not permitted|UnauthorizedAccess|Access to the path|Failed to persist' "$daemon_log" | head -5 >&2; then
    fail "the daemon's log reports refused file or system access (above)"
fi
log "OK: ingested, trained, promoted and served as an unprivileged user in the unit's sandbox ($(since "$t_all") s in all)"
