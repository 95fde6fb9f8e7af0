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
    `refuse()` is a database that is down: open connections are cut, new ones closed at once.
    `thaw()` drops the frozen connections and forwards again. `connections` counts the ones accepted."""

    def __init__(self, socket_dir: str) -> None:
        self.socket_path = f"{socket_dir}/.s.PGSQL.5432"
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._refusing = False
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def freeze(self) -> None:
        self._thawed.clear()

    def refuse(self) -> None:
        self._refusing = True
        self._cut()

    def thaw(self) -> None:
        self._refusing = False
        self._thawed.set()
        self._cut()

    def _cut(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.thaw()
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._refusing:
            writer.close()
            return
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


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (read from /proc, Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _is_server(pid: int) -> bool:
    try:
        return b"mana_credits.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class ServerProcess:
    """`mana-credits serve` as a child process in its own process group."""

    def __init__(self, url: str, data_dir: Path, workers: int = 1, /, **env: str) -> None:
        self.port = free_port()
        self.log: Path | None = None  # where its output goes (set before start), else nowhere
        self.workers = workers
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "DATABASE_URL": url, "PORT": str(self.port), "MANA_CREDITS_ENV": "development",
            "MANA_CREDITS_DATA_DIR": str(data_dir), **env,
        }  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Its output goes to `log` when given, else nowhere."""
        # The child keeps its own descriptor of the log; ours is closed once it runs.
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if self.log else None
        try:
            self.process = await asyncio.create_subprocess_exec(
                CLI, "serve", "--host", "127.0.0.1", "--workers", str(self.workers), env=self.env,
                start_new_session=True, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL if log is None else log,
            )  # fmt: skip
        finally:
            if log is not None:
                os.close(log)
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

    def worker_pids(self) -> set[int]:
        """The granian workers: the children of granian's main process, which is the command itself
        (exec'd, DATABASE_URL set) or its child (the command keeps the embedded database)."""
        assert self.process is not None
        main = self.process.pid
        if b"mana_credits.server" not in Path(f"/proc/{main}/cmdline").read_bytes():
            main = next(pid for pid in children(main) if _is_server(pid))
        return set(children(main))

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.signal(signal.SIGKILL)
            await self.process.wait()


@asynccontextmanager
async def running(url: str, data_dir: Path, workers: int = 1, /, **env: str) -> AsyncIterator[ServerProcess]:
    """A started server, killed on the way out whatever happened inside."""
    server = ServerProcess(url, data_dir, workers, **env)
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
