"""``bench/run.py profile``: the tally under pyinstrument while it works through K pre-loaded cases.

The profile covers the whole process life (start-up included); read the agent's subtree.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

from bench import harness
from ratifier.fleet import Fleet
from ratifier.topics import TopicNames


async def profile(cases: int, out: Path, timeout_s: float = 600.0) -> None:
    settings = harness.base_settings(topic_prefix=harness.unique_prefix("pf"), partitions=4)
    names = TopicNames.from_settings(settings)
    async with harness.topics_for(settings):
        await harness.preload(settings, cases)
        # pyinstrument 5 fails under PYTHONSAFEPATH (it inspects sys.path[0]) and puts the cwd
        # on sys.path: run it without the flag from a folder holding no `ratifier/`.
        env = {**os.environ, **Fleet.env_for(settings)}
        env.pop("PYTHONSAFEPATH", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(out),
            "-m", "ratifier", "tally", "run",
            env=env, stdin=asyncio.subprocess.DEVNULL, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        try:
            await harness.count_records(settings, names.decisions, cases, timeout_s)
        finally:
            proc.send_signal(signal.SIGINT)
            await proc.wait()
    print(f"profile written to {out}")
