"""Faults need things the shared session cannot give: a PostgreSQL of their own to stop, and the real
`mana-credits serve` process (granian, workers, signals) to kill."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from mana_credits.db.embedded import EmbeddedPostgres, database_url, ensure_database

CLI = str(Path(sys.executable).parent / "mana-credits")


class OwnPostgres:
    def __init__(self, folder: Path) -> None:
        self.server = EmbeddedPostgres(folder / "pg")
        self.admin_url = ""

    def start(self) -> str:
        self.admin_url = self.server.start()
        return self.admin_url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def own_postgres() -> Iterator[tuple[OwnPostgres, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="mana-credits-fault-"))
    pg = OwnPostgres(folder)
    pg.start()
    try:
        yield pg, folder
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


class FreezingProxy:
    """TCP in front of PostgreSQL's Unix socket. `freeze()` is a database that stops answering without
    closing anything (a network partition, a hung host): bytes are swallowed, new connections hang.
    `thaw()` drops the frozen connections and forwards again."""

    def __init__(self, socket_dir: str) -> None:
        self.socket_path = f"{socket_dir}/.s.PGSQL.5432"
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.thaw()
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._thawed.wait()
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._thawed.wait()
                    dst.write(data)
                    await dst.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`mana-credits serve` as a child process in its own process group."""

    def __init__(self, url: str, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "DATABASE_URL": url, "PORT": str(self.port), "MANA_CREDITS_ENV": "development",
            "MANA_CREDITS_DATA_DIR": str(data_dir), **env,
        }  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            CLI, "serve", "--host", "127.0.0.1", env=self.env, start_new_session=True,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{self.base}/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert self.process.returncode is None, "server exited while starting"
                await asyncio.sleep(0.1)
        raise AssertionError("server did not come up")

    def signal(self, sig: int, *, group: bool = True) -> None:
        """To the process group (as Ctrl-C or a closed terminal), or with `group=False` to the command alone
        (as `kill` or a process manager)."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    async def wait(self, bound: float) -> int | None:
        """The exit code, or None when it is still running after `bound` seconds."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), bound)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.signal(signal.SIGKILL)
            await self.process.wait()


@asynccontextmanager
async def running(url: str, data_dir: Path, **env: str) -> AsyncIterator[ServerProcess]:
    """A started server, killed on the way out whatever happened inside."""
    server = ServerProcess(url, data_dir, **env)
    try:
        await server.start()
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def proxy(own_postgres: tuple[OwnPostgres, Path]) -> AsyncIterator[FreezingProxy]:
    pg, _ = own_postgres
    await ensure_database(pg.admin_url, "faults")
    socket_dir = pg.admin_url.partition("host=")[2].split("&")[0]
    front = FreezingProxy(socket_dir)
    await front.start()
    yield front
    await front.stop()


@pytest.fixture
async def database_for_server(own_postgres: tuple[OwnPostgres, Path]) -> AsyncIterator[str]:
    pg, _ = own_postgres
    await ensure_database(pg.admin_url, "faults")
    yield database_url(pg.admin_url, "faults")
