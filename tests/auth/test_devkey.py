"""The development signing key is created once: processes starting together all end up with the same key."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from jwt.algorithms import OKPAlgorithm
from mana_credits.auth import devkey
print(OKPAlgorithm.to_jwk(devkey.load_or_create(Path(sys.argv[1])).public_key()))
"""


async def test_processes_racing_to_create_the_key_share_one(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"round-{round_}" / "dev-jwt-key.pem"
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCRIPT, str(path), stdout=asyncio.subprocess.PIPE
            )
            for _ in range(6)
        ]
        outputs = [(await process.communicate())[0] for process in processes]
        assert all(process.returncode == 0 for process in processes)
        assert len(set(outputs)) == 1, f"round {round_}: {len(set(outputs))} different keys"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
