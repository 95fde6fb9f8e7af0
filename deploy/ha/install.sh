#!/usr/bin/env bash
# What `make test-ha` needs on a Debian machine (run as root): etcd, Patroni 4.1.5 in a venv an
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
if [ ! -x /opt/mana-ha/venv/bin/patroni ]; then
  mkdir -p /opt/mana-ha
  /usr/bin/python3 -m venv /opt/mana-ha/venv
  /opt/mana-ha/venv/bin/pip install --quiet "patroni[etcd3]==4.1.5" "psycopg2-binary==2.9.13"
fi
id mana-ha >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mana-ha
