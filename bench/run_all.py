"""`make bench`: S1-S3 (HTTP + pgbench), S4 (renewals), S5 (history), S6 (statement, on S5's data);
writes bench/results/<date>.json.

.venv/bin/python -m bench.run_all [--seconds 10] [--rounds 3] [--workers 2] [--rows 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api, history, sync_renewal
from bench.harness import command_line

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.machine(),
    )  # fmt: skip
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def main(args: argparse.Namespace) -> None:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    print("== S1-S3: HTTP debits and balance reads beside pgbench and /health", flush=True)
    http = asyncio.run(api.run(args.seconds, args.rounds, args.workers))
    print("== S4: 100,000 cloud-sync renewals, 3 runners", flush=True)
    renewals = asyncio.run(sync_renewal.run())
    print("== S5: history at 10M ledger rows", flush=True)
    pages = asyncio.run(history.run(args.rows))
    result = {
        "machine": {
            **machine(),
            "date": started.isoformat(timespec="seconds"),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "workers": http["workers"],
        },
        "scenarios": {**http["scenarios"], "S4": renewals, "S5": pages},
        "rss_mb": http["rss_mb"],
        "pss_mb_per_worker": http["pss_mb_per_worker"],
        "audit_clean": http["audit_clean"] and renewals["verified"],
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started.date().isoformat()}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    parser = command_line(__doc__, http_rounds=True)
    parser.add_argument("--rows", type=int, default=10_000_000)
    main(parser.parse_args())
