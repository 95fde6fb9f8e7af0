"""The granian main process: it only supervises the workers, so it imports nothing of the application
(each worker loads `mana_credits.asgi` itself). `mana-credits serve` prepares the database, then becomes
this process (exec), so nothing of the CLI stays in memory either.

    python -m mana_credits.server HOST PORT WORKERS
"""

from __future__ import annotations

import resource
import sys

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
from granian.http import HTTP1Settings

# SIGTERM ends within a bound whatever a worker is stuck on (a hung database, a long request): its own
# shutdown gives up after app.SHUTDOWN_SECONDS, and a worker still alive after this is killed.
WORKER_KILL_SECONDS = 20

# Connections a client opens and leaves idle, or whose headers never end, are closed after this. hyper
# uses the same bound for a kept-alive connection's wait for its next request, so a proxy must drop its
# idle connections to us sooner (deploy/traefik.yaml: idleConnTimeout). The body's own deadline is
# kit/deadline.py: granian has none.
HEADER_READ_MS = 10_000

# granian's backpressure bounds the connections a worker serves at once, not its requests: a keep-alive
# connection holds its slot while idle, and a caller beyond the bound waits unserved in the kernel's queue
# (at granian's default, 1,024, about 1,100 idle sockets froze the service for as long as they were held;
# and 16 starved 48 of 64 busy keep-alive connections). So the bound is far above what any real caller
# or proxy pool holds, a guard on memory and file descriptors only; the timeouts above are what free the
# slots a stalled client takes.
CONNECTIONS_PER_WORKER = 4096
# File descriptors a worker needs besides its connections: database pool, logs, the metrics files.
OTHER_FILES = 256


def open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (the workers inherit it); the
    limit in force. The usual soft default, 1,024, would cap the connections below the bound."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = CONNECTIONS_PER_WORKER + OTHER_FILES if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
            soft = max(soft, wanted)
        except (ValueError, OSError):  # a container that refuses: keep the soft limit
            pass
    return soft


def connection_bound(files: int) -> int:
    return max(64, min(CONNECTIONS_PER_WORKER, files - OTHER_FILES))


def serve(host: str, port: int, workers: int) -> None:
    Granian(
        "mana_credits.asgi:app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        # A worker shares 2 cores with PostgreSQL: one single-threaded I/O runtime, no threads spinning idle.
        runtime_mode=RuntimeModes.st,
        runtime_threads=1,
        log_access=False,
        # HTTP/1 only: in auto mode granian first waits for bytes to tell HTTP/1 from HTTP/2, with no
        # timeout, so a connection that sent nothing stayed open forever. Traefik speaks HTTP/1.1 to us.
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_MS),
        backpressure=connection_bound(open_files_limit()),
        workers_kill_timeout=WORKER_KILL_SECONDS,
        # A worker that dies (an OOM kill) is replaced and costs only its own requests; by default granian
        # stops every worker on the first unexpected exit. A second death within 5.5 s of a respawn is a
        # crash loop to granian, and then it does exit (for the process manager to see).
        respawn_failed_workers=True,
    ).serve()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
