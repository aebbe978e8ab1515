#!/usr/bin/env bash
# run-tests.sh — the README's test command. Installs what the tests need (deploy/local/setup.sh),
# builds the solution, and runs every test project one after another (they start their own private
# RabbitMQ nodes and daemon processes; on 2 cores, running them side by side makes timing-based
# fault tests meaningless). Exits non-zero if any project fails or runs no tests.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/setup.sh --tests
dotnet build RetrainDaemon.sln -c "${CONFIGURATION:-Debug}" --nologo -v quiet

status=0
for project in tests/RetrainDaemon.UnitTests tests/RetrainDaemon.ModelTests tests/RetrainDaemon.IntegrationTests tests/RetrainDaemon.FaultTests; do
    echo "== $project"
    log=$(mktemp)
    if ! dotnet test "$project" -c "${CONFIGURATION:-Debug}" --no-build --nologo --logger "console;verbosity=normal" 2>&1 | tee "$log"; then
        status=1
    fi
    # A project that ran zero tests is a failure, not a pass.
    if ! grep -Eq "Passed!|Failed!|Total tests: [1-9]" "$log"; then
        echo "run-tests: $project ran no tests" >&2
        status=1
    fi
    if grep -Eq "Failed!|Test Run Failed" "$log"; then
        status=1
    fi
    rm -f "$log"
done

exit $status
