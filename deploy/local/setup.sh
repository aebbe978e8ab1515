#!/usr/bin/env bash
# setup.sh — install what RetrainDaemon needs on a Debian/Ubuntu machine: the broker and the
# datasets (Debian packages; nothing is downloaded at run time). Idempotent; quiet when all is there.
# --tests also installs what only the tests need: chromium (+ a font) for the review page test, and the
# PostgreSQL server binaries for the PostgreSQL store tests (they start private servers; no system-wide one runs).
set -euo pipefail

# libopenblas0-pthread: FID, KID and the novelty metrics call its BLAS/LAPACK (src/RetrainDaemon.Evaluation/LinearAlgebra).
packages=(rabbitmq-server dataset-fashion-mnist fortunes fortunes-min python3-onnx libopenblas0-pthread)
if [ "${1:-}" = "--tests" ]; then
    packages+=(chromium fonts-liberation)
    # Debian 12's PostgreSQL; elsewhere the distribution's default major version (the tests take the newest
    # /usr/lib/postgresql/*/bin, or RETRAIN_TEST_POSTGRES_BIN).
    if apt-cache show postgresql-15 >/dev/null 2>&1; then packages+=(postgresql-15); else packages+=(postgresql); fi
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ! command -v dotnet >/dev/null 2>&1; then
    echo "setup: the .NET 10 SDK (dotnet) is not on PATH; install it first: https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2
    exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi

echo "setup: installing ${missing[*]}" >&2
# The packages must not start a system-wide broker or database: the tests run private ones
# (deploy/rabbitmq/local-broker.sh, tests/Shared/PrivatePostgres.cs).
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
fi
trap '[ -n "$created_policy" ] && $sudo rm -f "$policy"' EXIT
# Nor create one: without this, the first install of a PostgreSQL server package makes a "main" cluster that
# would start at every boot. postgresql-common installs this file through ucf, which keeps a file already there
# when told to (UCF_FORCE_CONFFOLD) instead of asking.
if [[ " ${missing[*]}" == *" postgresql"* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
# env: sudo does not pass the caller's environment on.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
$sudo env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
