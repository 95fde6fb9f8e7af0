"""`make bench`: every scenario in turn, each with its defaults."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

SKIP = {"harness", "run_all"}


def main() -> None:
    here = Path(__file__).parent
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in SKIP):
        doc = (importlib.import_module(f"bench.{module}").__doc__ or "").strip().splitlines()
        print(f"\n== bench.{module}: {doc[0] if doc else ''}", flush=True)
        subprocess.run([sys.executable, "-m", f"bench.{module}"], check=True)


if __name__ == "__main__":
    main()
