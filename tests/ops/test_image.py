"""The Dockerfile, executed without Docker: its RUN and CMD lines in a clean folder as a non-root user.

No Docker engine runs here and no base image can be pulled, so the test plays the image: `/app` and `/tmp`
of the container are folders under one temp root, the base image's `python` is the system Python, the
build's RUN lines run as the non-root user, then the CMD serves the test database and the HEALTHCHECK's
command answers 0 (1 once the server is gone).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support import SERVICE_KEY, JwksServer

ROOT = Path(__file__).parents[2]
USER = "mana-image-test"
NETWORK_VARIABLES = re.compile(r"PROXY|CERT|CA_BUNDLE|^PIP_INDEX|^PIP_TRUSTED|^UV_INDEX", re.IGNORECASE)
SYSTEM_PYTHON = next((p for p in ("/usr/local/bin/python3", "/usr/bin/python3") if Path(p).exists()), None)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the image's non-root user (useradd)"),
    pytest.mark.skipif(SYSTEM_PYTHON is None, reason="needs a system Python a non-root user can run"),
]


@dataclass
class Stage:
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction == "FROM":
            alias = args.split(" AS ")
            stages.append(Stage(alias[1].strip() if len(alias) > 1 else None))
        else:
            stages[-1].steps.append((instruction, args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    """`["a", "b"]` (JSON exec form) → argv; the HEALTHCHECK's options are dropped before its CMD."""
    import json

    return list(json.loads(args[args.index("[") :]))


class Container:
    """A container's filesystem mapped under a temp root: only /app and /tmp are the image's own."""

    def __init__(self, root: Path, user: pwd.struct_passwd) -> None:
        self.root = root
        self.user = user
        # A clean environment, but this machine's way to the package index (proxy, CA bundle) as
        # `docker build` would have it from the daemon.
        network = {k: v for k, v in os.environ.items() if NETWORK_VARIABLES.search(k)}
        self.env: dict[str, str] = {**network, "PATH": f"{root / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
        self.workdir = root

    def path(self, value: str) -> str:
        return re.sub(r"(?<![\w.])/(app|tmp)\b", lambda m: f"{self.root}/{m.group(1)}", value)

    def set_env(self, args: str) -> None:
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            value = value.replace("$PATH", self.env["PATH"])
            self.env[key] = self.path(value)

    @property
    def as_user(self) -> list[str]:
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups"]

    def run(self, command: str | list[str], **extra_env: str) -> subprocess.CompletedProcess[str]:
        argv = ["sh", "-c", command] if isinstance(command, str) else command
        return subprocess.run(
            [*self.as_user, *argv],
            cwd=self.workdir, env={**self.env, "HOME": str(self.workdir), **extra_env},
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip

    def spawn(self, argv: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*self.as_user, *argv],
            cwd=self.workdir, env={**self.env, "HOME": str(self.workdir), **extra_env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def image_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True
        )
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def built(image_user: pwd.struct_passwd) -> Iterator[tuple[Container, Stage]]:
    """Run the build stage; yields the container and the runtime stage still to run."""
    root = Path(tempfile.mkdtemp(prefix="mana-image-"))
    root.chmod(0o755)
    container = Container(root, image_user)
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(SYSTEM_PYTHON or "")
    # A warm copy of uv's cache (hard links, so quick) keeps the test off the network for the wheels;
    # without one, uv downloads them as `docker build` would.
    cache = root / "uv-cache"
    warm = Path(
        subprocess.run(
            [str(ROOT / ".tools/bin/uv"), "cache", "dir"], capture_output=True, text=True
        ).stdout.strip()
    )
    if warm.is_dir():
        subprocess.run(["cp", "-al", str(warm), str(cache)], check=True)
        # Files uv writes in place (markers, locks) must be the user's own: let uv make them anew.
        for path in [*cache.glob("*"), *cache.glob("*/*"), *cache.rglob("*.lock")]:
            if path.is_file():
                path.unlink()
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            os.chown(path, image_user.pw_uid, image_user.pw_gid)
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    build, runtime = stages[0], stages[-1]
    try:
        for instruction, args in build.steps:
            if instruction == "WORKDIR":
                container.workdir = Path(container.path(args))
                container.workdir.mkdir(parents=True, exist_ok=True)
                os.chown(container.workdir, image_user.pw_uid, image_user.pw_gid)
            elif instruction == "ENV":
                container.set_env(args)
            elif instruction == "COPY":
                *sources, target = args.split()
                for source in sources:
                    destination = (
                        container.workdir / target / Path(source).name
                        if target.endswith("/")
                        else container.workdir / target
                    )
                    if (ROOT / source).is_dir():
                        shutil.copytree(
                            ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        shutil.copy(ROOT / source, destination)
                subprocess.run(
                    ["chown", "-R", f"{image_user.pw_uid}:{image_user.pw_gid}", str(container.workdir)],
                    check=True,
                )
            elif instruction == "RUN":
                done = container.run(args, UV_CACHE_DIR=str(cache))
                assert done.returncode == 0, f"RUN {args}\n{done.stdout}\n{done.stderr}"
        yield container, runtime
    finally:
        shutil.rmtree(root, ignore_errors=True)


def reach_socket(url: str) -> None:
    """Let the non-root user reach the test server's Unix socket (the session's temp folder is 0700)."""
    host = parse_qs(urlsplit(url).query).get("host", [""])[0]
    for folder in [Path(host), *Path(host).parents] if host else []:
        if folder != Path("/") and folder.is_dir():
            folder.chmod(folder.stat().st_mode | 0o011)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_memory_mib(pid: int) -> dict[str, int]:
    """RSS and PSS of a process and its descendants; PSS shares common pages out, as a cgroup counts them."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    tree = {pid}
    for _ in range(5):
        tree |= {child for child, parent in rows if parent in tree}
    totals = {"Rss": 0, "Pss": 0}
    for member in tree:
        rollup = Path(f"/proc/{member}/smaps_rollup")
        for line in rollup.read_text().splitlines() if rollup.exists() else []:
            key, _, value = line.partition(":")
            if key in totals:
                totals[key] += int(value.split()[0])
    return {key: value // 1024 for key, value in totals.items()} | {"processes": len(tree)}


async def test_the_image_commands_serve_as_a_non_root_user(
    built: tuple[Container, Stage], fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer
) -> None:
    container, runtime = built
    url = await fresh_database()
    start: list[str] = []
    healthcheck: list[str] = []
    for instruction, args in runtime.steps:
        if instruction == "ENV":
            container.set_env(args)
        elif instruction == "WORKDIR":
            container.workdir = Path(container.path(args))
        elif instruction == "USER":
            assert args != "root"
        elif instruction == "CMD":
            start = exec_form(args)
        elif instruction == "HEALTHCHECK":
            healthcheck = exec_form(args)
    assert start and healthcheck
    reach_socket(url)
    assert shutil.which(start[0], path=container.env["PATH"]) == str(
        container.root / "app/.venv/bin/mana-credits"
    )
    port = free_port()
    env = {"PORT": str(port), "DATABASE_URL": url, "MANA_SERVICE_KEY": SERVICE_KEY, "MANA_AUTH_URL": jwks.url}
    server = container.spawn(start, **env)
    try:
        for _ in range(300):
            if container.run(healthcheck, **env).returncode == 0:
                break
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the HEALTHCHECK never passed")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/ready")).status_code == 200
            headers = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "image-test"}
            grant = {"userId": "image-user", "amount": 42, "reason": "image", "referenceId": "image-1"}
            response = await http.post("/api/v1/internal/credits/grant", json=grant, headers=headers)
            assert response.status_code == 200, response.text
            response = await http.get("/api/v1/internal/credits/balance/image-user", headers=headers)
            assert response.json()["balance"] == 42
            for _ in range(50):  # some load, so the figure is not the idle one
                await http.get("/api/v1/internal/credits/balance/image-user", headers=headers)
        print(f"\nmemory of `{' '.join(start)}` (MiB, main + workers): {tree_memory_mib(server.pid)}")
        # Files the server wrote (embedded data dir unused here) stay inside the image's own folders.
        assert not (ROOT / ".data-image").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        if server.stderr is not None:
            server.stderr.close()
    assert container.run(healthcheck, **env).returncode == 1
