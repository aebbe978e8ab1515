#!/usr/bin/env bash
# local-broker.sh — run a PRIVATE RabbitMQ node on loopback for RetrainDaemon
# development and tests. It never touches the system node (/usr/sbin wrappers,
# /etc/rabbitmq, /var/lib/rabbitmq, epmd on 4369, the rabbitmq user's cookie).
#
# Usage:
#   local-broker.sh start|stop|status|wait|reset [--dir DIR] [--port N]
#   local-broker.sh [--dir DIR] [--port N] ctl RABBITMQCTL-ARGS...
#
#   start   start the node in the background (idempotent) and wait until ready
#   stop    stop the node and its private epmd (idempotent); data stays in DIR.
#           An epmd that other nodes are still registered with is left running
#           (see Clusters below)
#   status  exit 0 if running and answering, 3 otherwise
#   wait    wait (up to the start timeout) until the node is ready; exit 1 if not
#   reset   stop, then delete DIR
#   ctl     run rabbitmqctl against this node, e.g. `ctl list_queues name type`
#           (everything after `ctl` goes to rabbitmqctl unchanged)
#
# Settings (option > environment > value recorded in DIR by `start` > default):
#   --dir DIR   RETRAIN_BROKER_DIR        state dir          default $PWD/state/rabbitmq
#   --port N    RETRAIN_BROKER_PORT       AMQP port          default 5672
#               RETRAIN_BROKER_DIST_PORT  Erlang distribution port   default N+20000
#               RETRAIN_BROKER_EPMD_PORT  private epmd port          default N+1000
#               RETRAIN_BROKER_NODENAME   node name          default retrain-N@localhost
#               RETRAIN_BROKER_COOKIE     Erlang cookie (letters and digits) written to
#                                         DIR/.erlang.cookie on start; default: a random
#                                         cookie created once per DIR
#               RETRAIN_BROKER_START_TIMEOUT  seconds, default 60
#               RETRAIN_BROKER_STOP_TIMEOUT   seconds, default 60
#   Everything listens on 127.0.0.1 only. Ports for the default N=5672:
#   AMQP 5672, distribution 25672 (RabbitMQ's own N+20000 convention), epmd 6672.
#   N+1000 for epmd avoids every port RabbitMQ itself uses (4369, 5552, 5671/5672,
#   15672, 15692, 25672, 35672-35682, 1883, 61613) and, for N < 31768, the Linux
#   ephemeral range, so an outgoing connection cannot grab it; it only clashes with
#   another broker whose AMQP port is N+1000. CLI tools (rabbitmqctl) use RabbitMQ's
#   default 35672-35682 range for their own distribution listener, also on loopback.
#   Two nodes side by side need different --port and --dir.
#
# Clusters: nodes that are to join each other need the same RETRAIN_BROKER_COOKIE
# and the same RETRAIN_BROKER_EPMD_PORT (one epmd through which they find each
# other), and their own --dir, --port, RETRAIN_BROKER_DIST_PORT and node name.
# Form the cluster with `ctl stop_app`, `ctl join_cluster OTHER-NODE`, `ctl start_app`
# on each joining node. stop/reset/start kill a leftover epmd only while no other node
# is registered with it, so stopping one member never cuts the others off from epmd;
# the last member to stop takes it down.
#
# Layout of DIR:
#   rabbitmq.conf, enabled_plugins ([]. — no management plugin, nothing on 15672),
#   rabbitmq-env.conf (empty, shields /etc/rabbitmq/rabbitmq-env.conf), .erlang.cookie,
#   mnesia/ (all data; survives stop/start), log/<node>.log, log/stdout.log,
#   rabbitmq.pid (beam pid, written by RabbitMQ), launcher.pid, .local-broker (settings).
#
# Child processes get a clean environment (env -i) so stray RABBITMQ_* or the
# unprefixed names RabbitMQ also reads (LOGS, NODENAME, CONFIG_FILE, ...) cannot leak in.
set -euo pipefail

readonly RMQ_BIN=/usr/lib/rabbitmq/bin
readonly SAFE_PATH=/usr/bin:/bin:/usr/sbin:/sbin
SELF=$(basename -- "$0")

usage() {
    sed -n '2,/^set -euo pipefail/{/^set -euo/d;s/^# \{0,1\}//;p}' -- "$0"
}
log() { printf '%s: %s\n' "$SELF" "$*" >&2; }
die() { log "$*"; exit 1; }
usage_error() { log "$*"; log "run '$SELF --help' for usage"; exit 2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- arguments
cmd=""
ctl_args=()
opt_dir=""
opt_port=""
while (($#)); do
    case $1 in
        --dir) (($# >= 2)) || usage_error "--dir needs a value"; opt_dir=$2; shift 2 ;;
        --dir=*) opt_dir=${1#*=}; shift ;;
        --port) (($# >= 2)) || usage_error "--port needs a value"; opt_port=$2; shift 2 ;;
        --port=*) opt_port=${1#*=}; shift ;;
        -h | --help | help) usage; exit 0 ;;
        start | stop | status | wait | reset)
            [[ -z $cmd ]] || usage_error "more than one command: $cmd, $1"
            cmd=$1; shift ;;
        ctl)
            [[ -z $cmd ]] || usage_error "more than one command: $cmd, $1"
            cmd=ctl; shift; ctl_args=("$@"); break ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done
[[ -n $cmd ]] || usage_error "missing command (start|stop|status|wait|reset|ctl)"

# ---------------------------------------------------------------- settings
dir=${opt_dir:-${RETRAIN_BROKER_DIR:-$PWD/state/rabbitmq}}
[[ $dir == /* ]] || dir=$PWD/$dir
dir=$(realpath -m -- "$dir")
[[ $dir != / ]] || die "refusing to use / as the state dir"

settings_file=$dir/.local-broker
# Values recorded by the last `start` in this dir are the defaults, so that
# `stop --dir X` finds a node started with `start --dir X --port N`.
rec_port="" rec_dist="" rec_epmd="" rec_node=""
if [[ -f $settings_file ]]; then
    while IFS='=' read -r key value; do
        case $key in
            port) rec_port=$value ;;
            dist_port) rec_dist=$value ;;
            epmd_port) rec_epmd=$value ;;
            node) rec_node=$value ;;
        esac
    done <"$settings_file"
fi

if [[ -n $opt_port || -n ${RETRAIN_BROKER_PORT:-} ]]; then
    port=${opt_port:-$RETRAIN_BROKER_PORT}
    rec_dist="" rec_epmd="" rec_node="" # derived values follow the explicit port
else
    port=${rec_port:-5672}
fi
[[ $port =~ ^[0-9]+$ ]] || usage_error "port must be a number: $port"
port=$((10#$port))
dist_port=${RETRAIN_BROKER_DIST_PORT:-${rec_dist:-$((port + 20000))}}
epmd_port=${RETRAIN_BROKER_EPMD_PORT:-${rec_epmd:-$((port + 1000))}}
node=${RETRAIN_BROKER_NODENAME:-${rec_node:-retrain-$port@localhost}}
[[ $node == *@* ]] || node=$node@localhost
cookie=${RETRAIN_BROKER_COOKIE:-}
# Letters and digits only: the cookie becomes an Erlang atom, and anything else would
# need quoting rules the CLI and the server do not share.
[[ -z $cookie || $cookie =~ ^[A-Za-z0-9]{1,255}$ ]] ||
    usage_error "RETRAIN_BROKER_COOKIE must be 1-255 letters and digits"
start_timeout=${RETRAIN_BROKER_START_TIMEOUT:-60}
stop_timeout=${RETRAIN_BROKER_STOP_TIMEOUT:-60}

for p in "$port" "$dist_port" "$epmd_port"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((10#$p < 1 || 10#$p > 65535)); then
        usage_error "port out of range: $p (AMQP $port, dist $dist_port, epmd $epmd_port; set RETRAIN_BROKER_DIST_PORT / RETRAIN_BROKER_EPMD_PORT)"
    fi
done
((port != dist_port && port != epmd_port && dist_port != epmd_port)) ||
    usage_error "AMQP ($port), distribution ($dist_port) and epmd ($epmd_port) ports must differ"
((epmd_port != 4369)) || usage_error "epmd port 4369 is the shared system epmd; pick a private one"
for t in "$start_timeout" "$stop_timeout"; do
    if ! [[ $t =~ ^[0-9]+$ ]] || ((10#$t == 0)); then
        usage_error "timeouts must be positive integers (seconds): $t"
    fi
done

conf_file=$dir/rabbitmq.conf
plugins_file=$dir/enabled_plugins
env_conf_file=$dir/rabbitmq-env.conf
pid_file=$dir/rabbitmq.pid
launcher_pid_file=$dir/launcher.pid
log_dir=$dir/log
mnesia_dir=$dir/mnesia
stdout_log=$log_dir/stdout.log
node_log=$log_dir/$node.log

# The complete environment of every RabbitMQ / Erlang process we run.
benv=(env -i
    PATH="$SAFE_PATH"
    HOME="$dir"
    LANG=C.UTF-8
    LC_ALL=C.UTF-8
    ERL_EPMD_PORT="$epmd_port"
    ERL_EPMD_ADDRESS=127.0.0.1
    ERL_CRASH_DUMP="$log_dir/erl_crash.dump"
    RABBITMQ_NODENAME="$node"
    RABBITMQ_USE_LONGNAME=false
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$port"
    RABBITMQ_DIST_PORT="$dist_port"
    RABBITMQ_CONF_ENV_FILE="$env_conf_file"
    RABBITMQ_CONFIG_FILE="$conf_file"
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$plugins_file"
    RABBITMQ_MNESIA_BASE="$mnesia_dir"
    RABBITMQ_LOG_BASE="$log_dir"
    RABBITMQ_PID_FILE="$pid_file"
    RABBITMQ_MOTD_FILE="$dir/motd"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
)

describe() { printf 'node %s, dir %s' "$node" "$dir"; }

# ---------------------------------------------------------------- helpers
ensure_installed() {
    [[ -x $RMQ_BIN/rabbitmq-server ]] && return 0
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "rabbitmq-server is not installed; installing it with apt-get"
        local out policy_created=""
        out=$(mktemp)
        # Keep the package's postinst from starting the SYSTEM node.
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_created=1
        fi
        local rc=0
        {
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >"$out" 2>&1 ||
                { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$out" 2>&1 &&
                    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server >>"$out" 2>&1; }
        } || rc=$?
        [[ -z $policy_created ]] || rm -f /usr/sbin/policy-rc.d
        if ((rc != 0)) || [[ ! -x $RMQ_BIN/rabbitmq-server ]]; then
            tail -n 20 "$out" >&2
            rm -f "$out"
            die "apt-get install rabbitmq-server failed"
        fi
        rm -f "$out"
    else
        die "rabbitmq-server is not installed ($RMQ_BIN/rabbitmq-server missing). Install it as root: apt-get install rabbitmq-server (Debian 12: 3.10.8 on Erlang 25)"
    fi
}

# Is pid $1 a process started by this script for this dir?
is_ours() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/environ ]] &&
        grep -qzxF -- "RABBITMQ_MNESIA_BASE=$mnesia_dir" "/proc/$pid/environ" 2>/dev/null &&
        grep -qzxF -- "RABBITMQ_NODENAME=$node" "/proc/$pid/environ" 2>/dev/null
}

read_pid() { # file → pid on stdout, empty if none
    local pid=""
    if [[ -f $1 ]]; then read -r pid <"$1" 2>/dev/null || true; fi
    printf '%s' "$pid"
}

beam_pid() { # pid of our running beam, or empty
    local pid
    pid=$(read_pid "$pid_file")
    if [[ -n $pid ]] && is_ours "$pid"; then printf '%s' "$pid"; fi
}

launcher_pid() {
    local pid
    pid=$(read_pid "$launcher_pid_file")
    if [[ -n $pid ]] && is_ours "$pid"; then printf '%s' "$pid"; fi
}

# Like kill -0, but a zombie (exited, not yet reaped — PID 1 in containers may
# reap slowly, and our own background launcher is reaped only by us) is dead.
alive() {
    local stat
    [[ $1 =~ ^[0-9]+$ ]] && read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

ctl() { "${benv[@]}" "$RMQ_BIN/rabbitmqctl" -n "$node" "$@"; }

# Every process carrying this dir's environment: beam, erl_child_setup,
# inet_gethost, epmd, leftover CLI processes. $1 non-empty: leave epmd out.
our_processes() {
    local f pid keep_epmd=${1:-} comm
    for f in /proc/[0-9]*/environ; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [[ $pid != "$$" && $pid != "${BASHPID:-}" ]] || continue
        if [[ -n $keep_epmd ]]; then
            comm=""
            read -r comm 2>/dev/null <"/proc/$pid/comm" || true
            [[ $comm != epmd ]] || continue
        fi
        if is_ours "$pid"; then printf '%s\n' "$pid"; fi
    done
}

# `epmd -kill` itself refuses while any node is registered, so this never takes
# epmd away from other members of a cluster sharing it.
kill_private_epmd() {
    "${benv[@]}" epmd -kill >/dev/null 2>&1 || true
}

# True if a node other than a transient CLI tool (rabbitmqcli-*) is registered with
# our epmd: then it serves other cluster members and must survive this node.
epmd_serves_others() {
    local names
    names=$("${benv[@]}" epmd -names 2>/dev/null) || return 1
    grep -E '^name ' <<<"$names" | grep -qvE '^name rabbitmqcli-'
}

# Kill whatever is left of this node (after a clean stop this is nothing or epmd).
sweep() {
    local pids deadline keep_epmd=""
    kill_private_epmd
    # The epmd of a cluster carries the environment of the member that happened to
    # start it, so it looks like one of ours; killing it would leave the other
    # members unreachable by name (rabbitmqctl, join_cluster, restarts).
    if epmd_serves_others; then keep_epmd=1; fi
    mapfile -t pids < <(our_processes "$keep_epmd")
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
        mapfile -t pids < <(our_processes "$keep_epmd")
        ((${#pids[@]})) || return 0
        sleep 0.1
    done
    log "killing leftover processes: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

show_logs() {
    local f
    for f in "$node_log" "$stdout_log"; do
        [[ -s $f ]] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2
    done
}

lock() {
    mkdir -p -- "$dir"
    exec 9>"$dir/.lock"
    flock -w "$((start_timeout + stop_timeout))" 9 || die "timed out waiting for the lock on $dir/.lock"
}

# Wait until the node is ready, failing early if the launcher dies.
# $1: deadline (SECONDS); $2: launcher pid we just started, "" = look it up,
# "patient" = keep polling even while nothing is starting (the `wait` command).
# Returns 0 when ready, 1 on timeout, 2 if the node process exited.
wait_ready() {
    local deadline=$1 how=${2:-} lpid wpid rc remaining
    # Do not run the CLI before a node exists: it would spawn a private epmd.
    while [[ -z $(beam_pid) ]]; do
        ((SECONDS < deadline)) || return 1
        case $how in
            patient) ;;
            "") lpid=$(launcher_pid); [[ -n $lpid ]] || [[ -n $(beam_pid) ]] || return 2 ;;
            *) alive "$how" || [[ -n $(beam_pid) ]] || return 2 ;;
        esac
        sleep 0.1
    done
    remaining=$((deadline - SECONDS))
    ((remaining > 0)) || remaining=1
    "${benv[@]}" timeout "$remaining" "$RMQ_BIN/rabbitmqctl" -q -n "$node" \
        wait --timeout "$remaining" "$pid_file" >>"$log_dir/wait.log" 2>&1 &
    wpid=$!
    while kill -0 "$wpid" 2>/dev/null; do
        if [[ -z $(beam_pid) ]]; then
            kill "$wpid" 2>/dev/null || true
            wait "$wpid" 2>/dev/null || true
            return 2
        fi
        sleep 0.1
    done
    rc=0
    wait "$wpid" || rc=$?
    if ((rc != 0)); then
        [[ -n $(beam_pid) ]] || return 2
        return 1
    fi
    # Listener is up once the rabbit app is; double-check the AMQP port answers.
    while ! port_open "$port"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

write_files() {
    mkdir -p -- "$dir" "$log_dir" "$mnesia_dir"
    cat >"$conf_file" <<EOF
# Generated by deploy/rabbitmq/local-broker.sh on every start; edits are lost.
loopback_users.guest = true
listeners.tcp.default = 127.0.0.1:$port
max_message_size = 16777216
# The node log is log/<node>.log; keep log/stdout.log for early boot output only.
log.console = false
EOF
    printf '[].\n' >"$plugins_file"
    printf '# Intentionally empty: keeps /etc/rabbitmq/rabbitmq-env.conf out of this private node.\n' >"$env_conf_file"
    printf 'port=%s\ndist_port=%s\nepmd_port=%s\nnode=%s\n' \
        "$port" "$dist_port" "$epmd_port" "$node" >"$settings_file"
    if [[ -n $cookie ]]; then
        # Replaced whenever it differs (rm first: the file is read-only), so a dir can
        # join a cluster whose cookie it did not have before.
        if [[ ! -f $dir/.erlang.cookie ]] || [[ $(<"$dir/.erlang.cookie") != "$cookie" ]]; then
            rm -f -- "$dir/.erlang.cookie"
            (umask 077 && printf '%s' "$cookie" >"$dir/.erlang.cookie")
            chmod 400 "$dir/.erlang.cookie"
        fi
    elif [[ ! -s $dir/.erlang.cookie ]]; then
        # Create the cookie up front so the server and the CLI cannot race on it.
        local letters=ABCDEFGHIJKLMNOPQRSTUVWXYZ cookie="" n
        for n in $(od -An -N20 -tu1 /dev/urandom); do cookie+=${letters:n%26:1}; done
        (umask 077 && printf '%s' "$cookie" >"$dir/.erlang.cookie")
        chmod 400 "$dir/.erlang.cookie"
    fi
}

# ---------------------------------------------------------------- commands
cmd_start() {
    ensure_installed
    lock
    local t0 pid deadline lpid
    t0=$(now)
    pid=$(beam_pid)
    if [[ -n $pid ]]; then
        if wait_ready "$((SECONDS + start_timeout))"; then
            echo "broker already running on 127.0.0.1:$port ($(describe), pid $pid)"
            return 0
        fi
        show_logs
        die "broker process $pid exists but is not ready after ${start_timeout}s; try '$SELF stop' first"
    fi
    # Leftovers of a crashed/killed run (stale epmd, pid files).
    sweep
    rm -f -- "$pid_file" "$launcher_pid_file"
    if port_open "$port"; then
        die "127.0.0.1:$port is already in use by another process (not $(describe))"
    fi
    if port_open "$dist_port"; then
        die "distribution port 127.0.0.1:$dist_port is already in use; set RETRAIN_BROKER_DIST_PORT"
    fi
    write_files
    printf '\n===== %s start (%s) =====\n' "$(date -Is)" "$(describe)" >>"$stdout_log"
    # cd: the node's working directory (crash dumps etc.) is DIR, not the caller's.
    (cd -- "$dir" && exec setsid "${benv[@]}" "$RMQ_BIN/rabbitmq-server") </dev/null >>"$stdout_log" 2>&1 9>&- &
    lpid=$!
    printf '%s\n' "$lpid" >"$launcher_pid_file"
    deadline=$((SECONDS + start_timeout))
    local rc=0
    wait_ready "$deadline" "$lpid" || rc=$?
    if ((rc != 0)); then
        show_logs
        if ((rc == 2)); then
            log "broker failed to start ($(describe)); see $log_dir"
        else
            log "broker did not become ready within ${start_timeout}s ($(describe)); stopping it"
        fi
        stop_node >/dev/null 2>&1 || true
        sweep
        exit 1
    fi
    echo "broker ready on 127.0.0.1:$port ($(describe), pid $(beam_pid), started in $(elapsed "$t0")s)"
}

# Stop the node if running. Returns 0 if it was running, 1 if not.
stop_node() {
    local pid lpid deadline was_running=1
    pid=$(beam_pid)
    lpid=$(launcher_pid)
    if [[ -n $pid ]]; then
        was_running=0
        if ! "${benv[@]}" timeout "$stop_timeout" "$RMQ_BIN/rabbitmqctl" -q -n "$node" \
            stop "$pid_file" >>"$log_dir/stop.log" 2>&1; then
            log "rabbitmqctl stop failed; sending SIGTERM to $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        deadline=$((SECONDS + 15))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if alive "$pid"; then
            log "broker $pid still alive; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -n $lpid ]]; then
        [[ -n $pid ]] || kill -TERM "$lpid" 2>/dev/null || true # started but never wrote a pid file
        was_running=0
        deadline=$((SECONDS + 10))
        while alive "$lpid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    return "$was_running"
}

cmd_stop() {
    [[ -d $dir ]] || { echo "broker not running ($(describe))"; return 0; }
    lock
    local t0
    t0=$(now)
    if stop_node; then
        sweep
        rm -f -- "$pid_file" "$launcher_pid_file"
        echo "broker stopped ($(describe), in $(elapsed "$t0")s)"
    else
        sweep
        rm -f -- "$pid_file" "$launcher_pid_file"
        echo "broker not running ($(describe))"
    fi
}

cmd_status() {
    local pid
    pid=$(beam_pid)
    if [[ -z $pid ]]; then
        echo "not running ($(describe))"
        return 3
    fi
    if port_open "$port" &&
        "${benv[@]}" timeout 10 "$RMQ_BIN/rabbitmq-diagnostics" -q -n "$node" -t 10 check_running >/dev/null 2>&1; then
        echo "running on 127.0.0.1:$port ($(describe), pid $pid)"
        return 0
    fi
    echo "process $pid exists but the broker is not answering ($(describe))"
    return 3
}

cmd_wait() {
    local t0
    t0=$(now)
    if wait_ready "$((SECONDS + start_timeout))" patient; then
        echo "broker ready on 127.0.0.1:$port ($(describe), waited $(elapsed "$t0")s)"
        return 0
    fi
    [[ -n $(beam_pid) ]] || kill_private_epmd
    log "broker not ready after ${start_timeout}s ($(describe))"
    return 1
}

cmd_reset() {
    if [[ -e $dir ]]; then
        # Only delete dirs this script made: with its settings file, or holding
        # nothing but what a failed start / `ctl` leaves (lock file, cookie).
        local f foreign=""
        if [[ ! -f $settings_file ]]; then
            for f in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
                [[ -e $f || -L $f ]] || continue
                case ${f##*/} in .lock | .erlang.cookie) ;; *) foreign=$f ;; esac
            done
        fi
        if [[ -n $foreign ]]; then
            die "refusing to delete $dir: it was not created by $SELF (no .local-broker file)"
        fi
        cmd_stop
        rm -rf -- "$dir"
        echo "broker state deleted ($dir)"
    else
        echo "nothing to reset ($dir does not exist)"
    fi
}

cmd_ctl() {
    ensure_installed
    mkdir -p -- "$dir" # HOME for the CLI (cookie)
    local rc=0
    ctl "${ctl_args[@]}" || rc=$?
    # A CLI call against a stopped node spawns a private epmd; do not leave it behind.
    [[ -n $(beam_pid) ]] || kill_private_epmd
    return "$rc"
}

case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    wait) cmd_wait ;;
    reset) cmd_reset ;;
    ctl) cmd_ctl ;;
esac
