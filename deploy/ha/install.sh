#!/usr/bin/env bash
# What `make test-ha` needs on a Debian machine (run as root): etcd, Patroni (uv.lock) in a venv an
# unprivileged user can execute (/opt/mana-ha; PostgreSQL refuses to run as root), and that user.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/ha/install.sh: not root; the HA tests will be skipped and say what is missing" >&2
  exit 0
fi
if ! command -v etcd >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server etcd-client
fi
# Patroni and its dependencies as uv.lock pins them (pyproject's `ha` group).
uv="$(cd "$(dirname "$0")/../.." && pwd)/.tools/bin/uv"
wanted="$(mktemp)"
(cd "$(dirname "$0")/../.." && "$uv" export --only-group ha --no-hashes --frozen --no-emit-project --quiet) > "$wanted"
if [ ! -x /opt/mana-ha/venv/bin/patroni ] || ! cmp -s "$wanted" /opt/mana-ha/requirements.txt; then
  mkdir -p /opt/mana-ha
  [ -x /opt/mana-ha/venv/bin/pip ] || /usr/bin/python3 -m venv /opt/mana-ha/venv
  /opt/mana-ha/venv/bin/pip install --quiet -r "$wanted"
  cp "$wanted" /opt/mana-ha/requirements.txt
fi
rm -f "$wanted"
id mana-ha >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mana-ha
