#!/usr/bin/env bash
# run-daemon.sh — the README's first command: run RetrainDaemon on real data with its embedded
# defaults. Installs the broker and datasets if missing, starts a private RabbitMQ node on
# 127.0.0.1:5672 unless a broker is configured (RETRAIN__Broker__Endpoints__0) or already listening,
# builds and starts the daemon, publishes real Fashion-MNIST images, fortunes and English→German
# gettext pairs through the broker, prints what the store holds, and keeps running until Ctrl+C.
#
# Options: --count N    Fashion-MNIST images to publish (default 10000; 0 publishes nothing)
#          --no-publish only run the daemon
# State (SQLite store, broker data) lives in ./state/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

count=10000
publish=1
while [ $# -gt 0 ]; do
    case "$1" in
        --count) count="$2"; shift 2 ;;
        --no-publish) publish=0; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-daemon: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

bash deploy/local/setup.sh
echo "run-daemon: building (Release)"
dotnet build src/RetrainDaemon -c Release --nologo -v quiet
daemon=(dotnet "$root/src/RetrainDaemon/bin/Release/net10.0/linux-x64/retrain-daemon.dll")

started_broker=""
if [ -z "${RETRAIN__Broker__Endpoints__0:-}" ]; then
    if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        echo "run-daemon: using the broker already listening on localhost:5672"
    else
        bash deploy/rabbitmq/local-broker.sh start --dir "$root/state/rabbitmq" --port 5672
        started_broker=1
    fi
fi

"${daemon[@]}" run &
pid=$!
cleanup() {
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    if [ -n "$started_broker" ]; then
        bash deploy/rabbitmq/local-broker.sh stop --dir "$root/state/rabbitmq" --port 5672 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ingestion is what the data below needs; serving becomes ready only once every served model has a
# champion, which the loop's first fine-tunes produce after the data below crosses their triggers.
for _ in $(seq 1 120); do
    if curl -sS http://127.0.0.1:9464/v2/health/ready 2>/dev/null | grep -q '"ingestion":"consuming"'; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "run-daemon: the daemon exited" >&2; exit 1; }
    sleep 0.5
done
echo "run-daemon: ingesting — health at http://127.0.0.1:9464/v2/health/ready, metrics at /metrics, models at /v2/models/<name>"

if [ "$publish" = 1 ] && [ "$count" != 0 ]; then
    "${daemon[@]}" publish fashion-mnist --count "$count"
    "${daemon[@]}" publish fortunes --count 5000
    "${daemon[@]}" publish gettext --lang de --count 5000
    sleep 2
    "${daemon[@]}" samples stats | grep -E "^store|\(all\)|^feedback|^model" || true
fi

echo "run-daemon: running; the loop fine-tunes each model once its volume trigger is crossed (one at a time)."
echo "run-daemon: follow it with: ${daemon[*]} runs list   — Ctrl+C stops the daemon (and the private broker)"
wait "$pid"
