"""What the service's two lanes would gain if granian served them over RSGI instead of ASGI (not in
`make bench`).

    .venv/bin/python -m bench.rsgi_lanes [--users 1] [--connections 32] [--modes debit] [--rounds 4]

Two servers on one database, with wrk's runs alternating between them:
- `mana-credits serve` as deployed: ASGI, with the lanes of kit.lane in front of Litestar;
- a granian RSGI server of this module. It answers the same two lanes (credits.endpoints.LANES) with the
  service's own code: the route's `take` and work, the edge's request id, metrics and response headers
  (kit.logs, kit.metrics, kit.headers), and the app's lifespan around them.

The RSGI server answers nothing else (404; 501 for a request its lane would hand to the app). So it
measures the lanes alone. It is not a server that could replace the service: serving the rest of the app
over RSGI needs a bridge to Litestar's ASGI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import msgspec
from granian._granian import RSGIHTTPProtocol
from granian.rsgi import Scope as RsgiScope
from litestar.types import Scope

from bench.api import TOKENS, USERS, seed
from bench.harness import (
    CHECKOUT,
    command_line,
    embedded_database,
    free_port,
    granian_command,
    jwt_tokens,
    paired_runs,
    served,
    server_process,
    service_env,
)
from mana_credits.credits.lanes import LANES
from mana_credits.kit import headers, logs, metrics

_JSON = [(b"content-type", b"application/json")]


class _LanesOverRsgi:
    """granian's RSGI target in each worker: the service's app is made and started in `__rsgi_init__`."""

    def __init__(self) -> None:
        self._lifespan: contextlib.AbstractAsyncContextManager[None] | None = None
        self._scope = cast(Scope, {})  # what a lane's `take` reads of an ASGI scope: the app

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from mana_credits.app import create_app
        from mana_credits.config import Settings

        settings = Settings()
        logs.configure(json=not settings.is_development)
        app = create_app(settings)
        self._scope = cast(Scope, {"app": app})
        self._lifespan = app.lifespan()
        loop.run_until_complete(self._lifespan.__aenter__())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._lifespan is not None:
            loop.run_until_complete(self._lifespan.__aexit__(None, None, None))

    async def __rsgi__(self, scope: RsgiScope, protocol: RSGIHTTPProtocol) -> None:
        take = LANES.get((scope.method, scope.path))
        if take is None:
            protocol.response_bytes(200 if scope.path == "/ready" else 404, [], b"")
            return
        sent = {name.encode("latin-1"): value.encode("latin-1") for name, value in scope.headers.items()}
        work = take(self._scope, sent, await protocol())
        if work is None:
            protocol.response_bytes(501, [], b"")
            return
        request_id, token = logs.enter_request(sent.items())
        metrics.request_started(scope.method, scope.path)
        status, start = 500, time.perf_counter()
        try:
            body = msgspec.json.encode(await work())
            answer = [*headers.secured(self._scope, _JSON), (logs.HEADER, request_id.encode("latin-1"))]
            as_text = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in answer]
            protocol.response_bytes(200, as_text, body)
            status = 200
        finally:
            metrics.request_finished(scope.method, scope.path, status, time.perf_counter() - start)
            logs.leave_request(token)


lanes_app = _LanesOverRsgi()


@contextlib.asynccontextmanager
async def lanes_server(url: str, data_dir: str, workers: int) -> AsyncIterator[str]:
    """granian serving `lanes_app` over RSGI, configured as `mana-credits serve` configures its server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = granian_command("rsgi", "bench.rsgi_lanes:lanes_app", workers=workers, port=port)
    env = {**service_env(url, data_dir), "PYTHONPATH": CHECKOUT}
    async with server_process(command, env, lambda client: client.get(f"{base}/ready")):
        yield base


async def main(args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="mana-credits-bench-keys-")
    tokens = jwt_tokens(Path(data_dir), TOKENS)
    async with embedded_database() as url, contextlib.AsyncExitStack() as servers:
        await seed(url, USERS, 1_000_000_000)
        asgi = await servers.enter_async_context(served(url, workers=args.workers, data_dir=data_dir))
        rsgi = await servers.enter_async_context(lanes_server(url, data_dir, args.workers))
        await paired_runs(
            {"asgi (as deployed)": asgi.base, "rsgi (lanes only)": rsgi}, args.modes.split(","),
            rounds=args.rounds, seconds=args.seconds, connections=args.connections,
            env={"BENCH_USERS": str(args.users), "BENCH_TOKENS": str(tokens)},
        )  # fmt: skip


if __name__ == "__main__":
    parser = command_line(__doc__)
    parser.add_argument("--users", type=int, default=1, help="debit spread (1: one hot account, as S2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--modes", default="debit", help="debit and/or balance, comma-separated")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
