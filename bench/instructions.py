"""Instructions per request, counted by valgrind's callgrind: the same count for the same code whatever
else the machine does, so two versions compare to the percent where req/s cannot. In one process, no
server: the ASGI app with its lifespan (real PostgreSQL), requests in 64 concurrent streams as in the
HTTP scenarios; only the measured requests are counted (after as many to warm up). Not in `make bench`;
needs valgrind (Debian package).

    .venv/bin/python -m bench.instructions health|balance|debit [--requests 1000] [--src ../other/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.api import TOKENS, USERS, seed
from bench.harness import SERVICE_KEY, command_line, embedded_database, jwt_tokens

STREAMS = 64


PATHS = {"health": "/health", "balance": "/api/v1/credits/balance", "debit": "/api/v1/internal/credits/use"}


def _request(mode: str, number: int, tokens: list[str]) -> tuple[dict[str, Any], bytes]:
    """The request wrk sends in `mode` (bench/wrk.lua): its ASGI scope and body."""
    body = b""
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk")]
    if mode == "balance":
        headers.append((b"authorization", b"Bearer " + tokens[number % len(tokens)].encode()))
    if mode == "debit":
        user = f"bench-{number % USERS + 1}"
        body = f'{{"userId":"{user}","amount":1,"appId":"bench","description":"bench debit"}}'.encode()
        headers += [(b"content-type", b"application/json"), (b"x-service-key", SERVICE_KEY.encode()),
                    (b"x-app-id", b"bench"), (b"content-length", str(len(body)).encode())]  # fmt: skip
    path = PATHS[mode]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": "POST" if body else "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3061),
        "state": {},
    }  # fmt: skip
    return scope, body


async def _exchange(app: Any, scope: dict[str, Any], body: bytes) -> int:
    """One request through the ASGI app; its status."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def _counting(on: bool) -> None:
    switch = await asyncio.create_subprocess_exec(
        "callgrind_control", f"--instr={'on' if on else 'off'}", str(os.getpid()),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await switch.wait()


async def _serve_in_process(mode: str, requests: int) -> None:
    """Runs under callgrind: warm up, then count `requests` requests."""
    data_dir = tempfile.mkdtemp(prefix="mana-credits-instructions-")
    tokens = jwt_tokens(Path(data_dir), TOKENS).read_text().split()
    async with embedded_database() as url:
        await seed(url, USERS, 1_000_000_000)
        # Metrics in multiprocess mode, as the served workers keep them (`serve` sets the folder).
        metrics_dir = tempfile.mkdtemp(prefix="mana-credits-metrics-")
        os.environ.update(DATABASE_URL=url, MANA_SERVICE_KEY=SERVICE_KEY, MANA_CREDITS_ENV="development",
                          MANA_CREDITS_SCHEDULER="false", MANA_CREDITS_DATA_DIR=data_dir,
                          PROMETHEUS_MULTIPROC_DIR=metrics_dir)  # fmt: skip
        from mana_credits import asgi

        async def stream(first: int, start: int) -> None:
            for number in range(start + first, start + requests, STREAMS):
                status = await _exchange(asgi.app, *_request(mode, number, tokens))
                assert status == 200, status

        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        lifespan: asyncio.Task[None] = asyncio.create_task(asgi.app(lifespan_scope, inbox.get, outbox.put))  # type: ignore[arg-type]
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        await asyncio.gather(*(stream(first, 0) for first in range(STREAMS)))
        await _counting(True)
        await asyncio.gather(*(stream(first, requests) for first in range(STREAMS)))
        await _counting(False)
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan


def count(mode: str, requests: int, src: str | None) -> int:
    """Instructions per request of `mode` (this checkout, or the code in `src`)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    folder = Path(tempfile.mkdtemp(prefix="mana-credits-callgrind-"))
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={folder}/out.%p",
        sys.executable, "-m", "bench.instructions", mode, "--requests", str(requests), "--counted",
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)
    totals = [
        line
        for path in folder.iterdir()
        for line in path.read_text().splitlines()
        if line.startswith("totals:")
    ]
    shutil.rmtree(folder, ignore_errors=True)
    return sum(int(line.split()[1]) for line in totals) // requests


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("mode", choices=["health", "balance", "debit"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--src", type=lambda path: str(Path(path).resolve()), help="a checkout's src")
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted:
        import uvloop  # the served workers' loop

        uvloop.run(_serve_in_process(args.mode, args.requests))
    else:
        print(f"{args.mode}: {count(args.mode, args.requests, args.src):,} instructions a request")
