#!/usr/bin/env bash
# System packages the test suite uses beyond the virtualenv: PostgreSQL (a throw-away server, see
# scripts/pg.sh) and Chromium (the browser check of the MLflow UI). Installed from Debian's
# registry where missing and we may (root with apt-get); otherwise the tests that need them are
# skipped, and pytest -ra says why.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "not installing ${need[*]} (needs root and apt-get): the tests that use them will be skipped" >&2
    exit 0
fi
# The package's own cluster would start a second server on port 5432; the tests bring their own.
mkdir -p /etc/postgresql-common/createcluster.d
[[ -e /etc/postgresql-common/createcluster.d/foreseer.conf ]] \
    || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/foreseer.conf
echo "installing ${need[*]} from Debian (apt-get)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "apt-get could not install ${need[*]}: the tests that use them will be skipped" >&2
