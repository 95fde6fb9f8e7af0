"""The granian main process: it only supervises the workers, so it imports nothing of the application
(each worker loads `mana_credits.asgi` itself). `mana-credits serve` prepares the database, then becomes
this process (exec), so nothing of the CLI stays in memory either.

    python -m mana_credits.server HOST PORT WORKERS
"""

from __future__ import annotations

import sys

from granian import Granian
from granian.constants import Interfaces, Loops, RuntimeModes

# Granian's backpressure bounds the connections a worker serves, not its requests: a keep-alive connection
# holds its slot while idle, and callers beyond the bound wait unserved (16 starved 48 of 64 keep-alive
# connections, and would starve a proxy's keep-alive pool). So it stays at granian's default (backlog).
# SIGTERM ends within a bound whatever a worker is stuck on (a hung database, a long request): its own
# shutdown gives up after app.SHUTDOWN_SECONDS, and a worker still alive after this is killed.
WORKER_KILL_SECONDS = 20


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
        workers_kill_timeout=WORKER_KILL_SECONDS,
        # A worker that dies (an OOM kill) is replaced and costs only its own requests; by default granian
        # stops every worker on the first unexpected exit. A second death within 5.5 s of a respawn is a
        # crash loop to granian, and then it does exit (for the process manager to see).
        respawn_failed_workers=True,
    ).serve()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
