#!/usr/bin/env bash
# install.sh — install RetrainDaemon as a systemd service (idempotent; run it again to upgrade).
#
#   PREFIX/opt/retrain-daemon/                  `dotnet publish -c Release -r linux-x64 --self-contained false`
#                                               of src/RetrainDaemon, root-owned, not writable by the service
#   PREFIX/etc/systemd/system/retrain-daemon.service
#   PREFIX/etc/systemd/system/retrain-daemon.service.d/gpu.conf   only with --gpu
#   PREFIX/etc/retrain-daemon/                  appsettings.json is yours (never overwritten)
#   PREFIX/etc/retrain-daemon/credentials/      root 0700; api-keys and admin-key generated if missing (0600);
#                                               broker-password is yours to write (the unit will not start without it)
#   PREFIX/usr/local/bin/retrain-daemon         runs the CLI verbs as the service user on the service's state
#   user and group retrain-daemon               system user, no home (/nonexistent), no shell (only for PREFIX=/)
#   /var/lib/retrain-daemon                     created by systemd (StateDirectory=) at the first start
#
# Options: --prefix DIR         install under DIR instead of / (CI: a temp root; no user, no systemctl)
#          --dry-run            print what would be done, change nothing
#          --build-output DIR   install this publish output instead of publishing
#          --gpu                also install the GPU drop-in (deploy/systemd/gpu.conf)
# It does not enable or start the service; it prints the commands. Needs the .NET 10 SDK to publish and
# the ASP.NET Core 10 runtime at /usr/bin/dotnet to run.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

prefix=/
dry=0
build_output=""
gpu=0
while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --dry-run) dry=1; shift ;;
        --build-output) build_output=$(readlink -f "$2"); shift 2 ;;
        --gpu) gpu=1; shift ;;
        -h | --help) sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
prefix=${prefix%/}
root=${prefix:-/}
system=$([[ -z $prefix ]] && echo 1 || echo 0)   # installing into the running system (not a temp root)

say() { printf 'install.sh: %s\n' "$*"; }
run() { if ((dry)); then printf '  + %s\n' "$*"; else "$@"; fi }
((dry)) || [[ $(id -u) == 0 ]] || { say "run as root (or with --dry-run)"; exit 1; }

app=$prefix/opt/retrain-daemon
etc=$prefix/etc/retrain-daemon
unit_dir=$prefix/etc/systemd/system

# 1. The application: published next to the old one, then swapped in by rename (a running service keeps
#    the files it has open; `systemctl restart` picks up the new ones).
if [[ -z $build_output ]]; then
    build_output=$(mktemp -d)
    trap 'rm -rf "$build_output"' EXIT
    say "publishing src/RetrainDaemon (Release, linux-x64, framework-dependent) into $build_output"
    run flock /tmp/retrain-build.lock dotnet publish "$repo/src/RetrainDaemon" -c Release -r linux-x64 --self-contained false \
        -o "$build_output" --nologo -v quiet
fi
((dry)) || [[ -f $build_output/retrain-daemon.dll ]] || { say "$build_output has no retrain-daemon.dll"; exit 1; }
say "installing the application into $app"
run mkdir -p "$(dirname "$app")"
run rm -rf "$app.new" "$app.old"
run cp -a "$build_output/." "$app.new/"
run chown -R root:root "$app.new"
run chmod -R u=rwX,go=rX "$app.new"
if [[ -d $app ]] || ((dry)); then run mv -T "$app" "$app.old"; fi
run mv -T "$app.new" "$app"
run rm -rf "$app.old"

# 2. The user (static, see the unit for why not DynamicUser=).
if ((system)); then
    if getent passwd retrain-daemon >/dev/null; then
        say "user retrain-daemon exists"
    else
        say "creating system user retrain-daemon"
        run useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "RetrainDaemon service" retrain-daemon
    fi
else
    say "--prefix: not creating the user retrain-daemon (create it on the target: useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin retrain-daemon)"
fi

# 3. The unit (+ the GPU drop-in).
say "installing $unit_dir/retrain-daemon.service"
run install -D -m 0644 "$repo/deploy/systemd/retrain-daemon.service" "$unit_dir/retrain-daemon.service"
if ((gpu)); then
    run install -D -m 0644 "$repo/deploy/systemd/gpu.conf" "$unit_dir/retrain-daemon.service.d/gpu.conf"
fi

# 4. Configuration and credentials (existing files are never touched).
run install -d -m 0755 "$etc"
run install -d -m 0700 "$etc/credentials"
for key in api-keys admin-key; do
    if [[ -e $etc/credentials/$key ]]; then
        say "$etc/credentials/$key exists (kept)"
    else
        say "generating $etc/credentials/$key (a random 32-character key, root 0600)"
        if ((dry)); then printf '  + (write a random key to %s)\n' "$etc/credentials/$key"; else
            (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$etc/credentials/$key"); fi
    fi
done
if [[ ! -e $etc/credentials/broker-password ]]; then
    say "WRITE $etc/credentials/broker-password (first line = the broker password of Broker:UserName; root 0600) before the first start"
fi

# 5. The CLI wrapper: the verbs see the same store/registry/run paths as the service, as its user.
say "installing $prefix/usr/local/bin/retrain-daemon"
wrapper=$(cat <<'WRAPPER'
#!/bin/sh
# retrain-daemon CLI on the service's state, as the service's user (installed by deploy/systemd/install.sh).
# Verbs that need the broker (publish) or the admin key read them as root: pass --set Broker:Password=... yourself.
state=/var/lib/retrain-daemon
[ -d "$state" ] || { echo "retrain-daemon: $state does not exist yet (start the service once)" >&2; exit 1; }
cd "$state" || exit 1
umask 077
exec runuser -u retrain-daemon -- env ORT_DISABLE_TELEMETRY=1 DOTNET_NOLOGO=1 \
    RETRAIN__Store__Path=$state/retrain.db RETRAIN__Registry__Root=$state/registry \
    RETRAIN__Loop__RunsDirectory=$state/runs RETRAIN__Loop__AnalysisDirectory=$state/analysis \
    RETRAIN__Loop__SchedulerStore=$state/scheduler.db RETRAIN__Evaluation__StatisticsCache=$state/reference-stats \
    /usr/bin/dotnet /opt/retrain-daemon/retrain-daemon.dll "$@"
WRAPPER
)
if ((dry)); then printf '  + (write the wrapper to %s)\n' "$prefix/usr/local/bin/retrain-daemon"; else
    install -d -m 0755 "$prefix/usr/local/bin"
    printf '%s\n' "$wrapper" >"$prefix/usr/local/bin/retrain-daemon"; chmod 0755 "$prefix/usr/local/bin/retrain-daemon"; fi

# 6. systemd.
if ((system)) && [[ -d /run/systemd/system ]]; then
    run systemctl daemon-reload
    say "next: write the broker password, then: systemctl enable --now retrain-daemon; journalctl -u retrain-daemon -f"
else
    say "systemd is not running here (or --prefix): no daemon-reload; on the target: systemctl daemon-reload && systemctl enable --now retrain-daemon"
fi
[[ -x /usr/bin/dotnet ]] || say "warning: /usr/bin/dotnet is missing; the unit's ExecStart needs the ASP.NET Core 10 runtime there"
say "done"
