#!/usr/bin/env bash
# monitoring.sh — proves monitoring/ against real tools and a real daemon:
#   1. promtool check config, check rules, test rules (Debian's prometheus package);
#   2. the Grafana dashboard type-checks against @grafana/schema's Dashboard type with tsc (npm, pinned);
#   3. a private RabbitMQ, the daemon (embedded defaults: loop on, no champion yet; its state in a temp dir)
#      and a Prometheus scraping it on loopback; once `up` is 1, every metric name used by rules.yml and
#      the dashboard must be among the names Prometheus stored (/api/v1/label/__name__/values).
# Installs what is missing (apt: prometheus; npm into a temp dir: typescript, @grafana/schema, yaml).
# Uses the build output of CONFIGURATION (default Debug), building it if absent. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
configuration=${CONFIGURATION:-Debug}
TYPESCRIPT_VERSION=5.9.3
GRAFANA_SCHEMA_VERSION=13.2.3
YAML_VERSION=2.8.1

say() { printf 'monitoring: %s\n' "$*"; }
fail() { printf 'monitoring: FAIL: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d /tmp/retrain-monitoring.XXXXXX)
daemon_pid="" prometheus_pid="" broker_port=""
cleanup() {
    status=$?
    [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null && wait "$prometheus_pid" 2>/dev/null || true
    [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    [ -n "$broker_port" ] && bash "$root/deploy/rabbitmq/local-broker.sh" stop --dir "$work/broker" --port "$broker_port" >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ]; then
        for log in daemon.log prometheus.log; do
            [ -f "$work/$log" ] && { echo "--- last lines of $log"; tail -n 30 "$work/$log"; } >&2
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    say "installing Debian's prometheus"
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v npm >/dev/null || fail "npm is needed for the dashboard type check"
say "installing typescript@$TYPESCRIPT_VERSION @grafana/schema@$GRAFANA_SCHEMA_VERSION yaml@$YAML_VERSION into $work/npm"
mkdir -p "$work/npm"
(cd "$work/npm" && echo '{"private":true}' > package.json \
    && npm install --silent --no-audit --no-fund --no-save "typescript@$TYPESCRIPT_VERSION" "@grafana/schema@$GRAFANA_SCHEMA_VERSION" "yaml@$YAML_VERSION" >/dev/null)

# ---------------------------------------------------------------- static checks
say "promtool check config monitoring/prometheus/prometheus.yml"
promtool check config monitoring/prometheus/prometheus.yml
say "promtool check rules monitoring/prometheus/rules.yml"
promtool check rules monitoring/prometheus/rules.yml
say "promtool test rules monitoring/prometheus/rules_test.yml"
(cd monitoring/prometheus && promtool test rules rules_test.yml)

# Every alert of rules.yml must appear in rules_test.yml and have a runbook section in docs/operations.md.
cat > "$work/npm/lint.mjs" <<'JS'
import fs from 'node:fs';
import YAML from 'yaml';
const [rulesPath, testPath, runbookPath] = process.argv.slice(2);
const rules = YAML.parse(fs.readFileSync(rulesPath, 'utf8')).groups.flatMap(g => g.rules).filter(r => r.alert);
const tested = new Set(YAML.parse(fs.readFileSync(testPath, 'utf8')).tests.flatMap(t => (t.alert_rule_test ?? []).filter(a => (a.exp_alerts ?? []).length > 0).map(a => a.alertname)));
const headings = new Set([...fs.readFileSync(runbookPath, 'utf8').matchAll(/^#+\s+(\S+)\s*$/gm)].map(m => m[1].toLowerCase()));
let bad = 0;
for (const r of rules) {
  const anchor = (r.annotations?.runbook_url ?? '').split('#')[1];
  const problems = [];
  if (!tested.has(r.alert)) problems.push('no firing test in rules_test.yml');
  if (!r.labels?.severity) problems.push('no severity label');
  for (const k of ['summary', 'description', 'runbook_url']) if (!r.annotations?.[k]) problems.push(`no ${k}`);
  if (anchor !== r.alert.toLowerCase() || !headings.has(anchor)) problems.push(`runbook anchor '${anchor}' has no section in docs/operations.md`);
  console.log(`  ${problems.length ? 'FAIL' : 'ok  '} ${r.alert}${problems.length ? ': ' + problems.join('; ') : ''}`);
  bad += problems.length;
}
process.exit(bad ? 1 : 0);
JS
say "every alert: severity, summary, description, a firing test, a runbook section"
node "$work/npm/lint.mjs" monitoring/prometheus/rules.yml monitoring/prometheus/rules_test.yml docs/operations.md

for dashboard in monitoring/grafana/dashboards/*.json; do
    say "tsc: $dashboard satisfies @grafana/schema's Dashboard"
    { printf "import type { Dashboard } from '@grafana/schema';\nexport const dashboard = (\n"; cat "$dashboard"; printf ") satisfies Dashboard;\n"; } > "$work/npm/dashboard.ts"
    (cd "$work/npm" && node_modules/.bin/tsc --noEmit --strict --skipLibCheck --module nodenext --moduleResolution nodenext --target es2022 dashboard.ts) \
        || fail "$dashboard does not type-check as a Dashboard"
done

# ---------------------------------------------------------------- live: broker, daemon, Prometheus
free_port() {  # a free loopback TCP port in [$1, $2)
    local p
    for _ in $(seq 1 200); do
        p=$(( $1 + RANDOM % ($2 - $1) ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    fail "no free port in [$1, $2)"
}

dll="$root/src/RetrainDaemon/bin/$configuration/net10.0/linux-x64/retrain-daemon.dll"
if [ ! -f "$dll" ]; then
    say "building src/RetrainDaemon ($configuration)"
    dotnet build src/RetrainDaemon -c "$configuration" --nologo -v quiet
fi

broker_port=$(free_port 21000 29000)   # local-broker.sh also uses port+1000 and port+20000
say "starting a private RabbitMQ on 127.0.0.1:$broker_port"
bash deploy/rabbitmq/local-broker.sh start --dir "$work/broker" --port "$broker_port" >/dev/null

http_port=$(free_port 40000 44000)
state="$work/state"
mkdir -p "$state"
say "starting the daemon (embedded defaults, state in $state) on 127.0.0.1:$http_port"
(cd "$work" && exec dotnet "$dll" run \
    --set "Broker:Endpoints:0=127.0.0.1:$broker_port" \
    --set "Http:Urls=http://127.0.0.1:$http_port" \
    --set "Store:Path=$state/retrain.db" \
    --set "Registry:Root=$state/registry" \
    --set "Loop:RunsDirectory=$state/runs" \
    --set "Loop:AnalysisDirectory=$state/analysis" \
    --set "Loop:SchedulerStore=$state/scheduler.db" \
    --set "Evaluation:StatisticsCache=$state/reference-stats" \
    > "$work/daemon.log" 2>&1) &
daemon_pid=$!
for i in $(seq 1 120); do
    curl -sS "http://127.0.0.1:$http_port/v2/health/ready" 2>/dev/null | grep -q '"ingestion":"consuming"' && break
    kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited"
    [ "$i" = 120 ] && fail "the daemon did not start consuming within 60 s"
    sleep 0.5
done
# Request series are born with the first request: one generate call (answered 503, no champion yet).
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"count":1}' \
    "http://127.0.0.1:$http_port/v1/models/fashion-mnist/generate")
say "POST /v1/models/fashion-mnist/generate answered $code (no champion yet)"

prom_port=$(free_port 44000 48000)
mkdir -p "$work/prometheus"
cp monitoring/prometheus/rules.yml "$work/prometheus/rules.yml"
sed -e "s/127\.0\.0\.1:9464/127.0.0.1:$http_port/" -e 's/scrape_interval: 15s/scrape_interval: 2s/' \
    monitoring/prometheus/prometheus.yml > "$work/prometheus/prometheus.yml"
grep -q "127.0.0.1:$http_port" "$work/prometheus/prometheus.yml" || fail "could not point prometheus.yml at the daemon"
promtool check config "$work/prometheus/prometheus.yml" >/dev/null
say "starting Prometheus on 127.0.0.1:$prom_port scraping 127.0.0.1:$http_port/metrics"
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
    --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
prometheus_pid=$!
api="http://127.0.0.1:$prom_port/api/v1"
for i in $(seq 1 60); do
    value=$(curl -fsS --get "$api/query" --data-urlencode 'query=up{job="retrain-daemon"}' 2>/dev/null | jq -r '.data.result[0].value[1] // empty' || true)
    [ "$value" = 1 ] && break
    kill -0 "$prometheus_pid" 2>/dev/null || fail "Prometheus exited"
    [ "$i" = 60 ] && fail "Prometheus has no up=1 sample of the daemon after 60 s"
    sleep 1
done
say "Prometheus scrapes the daemon (up = 1)"
sleep 5   # a few more scrapes (the queue-depth and disk gauges are read every few seconds)

rules_loaded=$(curl -fsS "$api/rules" | jq '[.data.groups[].rules[] | select(.type == "alerting")] | length')
say "Prometheus loaded $rules_loaded alerting rules"
[ "$rules_loaded" -gt 0 ] || fail "Prometheus loaded no alerting rules"

curl -fsS "$api/label/__name__/values" | jq -r '.data[]' | sort -u > "$work/stored-names"

# Metric names used by the rules' expressions and the dashboard's targets (identifiers that are not
# functions, keywords, label names, grouping labels, strings, durations or template variables).
cat > "$work/npm/names.mjs" <<'JS'
import fs from 'node:fs';
import YAML from 'yaml';
const [rulesPath, ...dashboards] = process.argv.slice(2);
const exprs = [];
for (const g of YAML.parse(fs.readFileSync(rulesPath, 'utf8')).groups) for (const r of g.rules) exprs.push(['rules.yml ' + (r.alert ?? r.record), String(r.expr)]);
const walk = (o, where) => { if (Array.isArray(o)) o.forEach(x => walk(x, where)); else if (o && typeof o === 'object') { if (typeof o.expr === 'string') exprs.push([where, o.expr]); if (typeof o.query === 'string' && o.query.startsWith('label_values(')) exprs.push([where, o.query.replace(/^label_values\((.*),\s*\w+\)$/, '$1')]); Object.values(o).forEach(x => walk(x, where)); } };
for (const d of dashboards) walk(JSON.parse(fs.readFileSync(d, 'utf8')), d.split('/').pop());
const keywords = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);
const names = new Map();
for (const [where, raw] of exprs) {
  let e = raw.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ').replace(/\$\w+/g, ' ');
  for (const m of e.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()/g)) {
    if (keywords.has(m[1].toLowerCase())) continue;
    if (!names.has(m[1])) names.set(m[1], new Set());
    names.get(m[1]).add(where);
  }
}
for (const [n, w] of [...names].sort()) console.log(`${n}\t${[...w].join(', ')}`);
JS
node "$work/npm/names.mjs" monitoring/prometheus/rules.yml monitoring/grafana/dashboards/*.json > "$work/used-names"
[ -s "$work/used-names" ] || fail "found no metric names in the rules and dashboards"

missing=0
while IFS=$'\t' read -r name where; do
    # A histogram is stored as name_bucket/_sum/_count; rules and panels name those series directly.
    if grep -qxF "$name" "$work/stored-names"; then
        printf '  ok       %-52s (%s)\n' "$name" "$where"
    else
        printf '  MISSING  %-52s (%s)\n' "$name" "$where"
        missing=$((missing + 1))
    fi
done < "$work/used-names"
used=$(wc -l < "$work/used-names")
[ "$missing" -eq 0 ] || fail "$missing of $used metric names used by rules.yml and the dashboard are not exported by the daemon"
say "all $used metric names used by rules.yml and the dashboard are in Prometheus"
say "PASS"
