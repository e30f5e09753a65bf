"""``bench/run.py profile``: a process under pyinstrument while it works through K pre-loaded cases.

The target is the tally (``ratifier tally run``) or the faust relay (bench/relay.py), whose
profile is faust's consumer path with nearly nothing on top. The profile covers the whole process
life (start-up included); read the agent's subtree.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

from bench import harness
from ratifier.core.topics import TopicNames
from ratifier.ops.fleet import Fleet

TARGETS = ("tally", "faust-relay")


async def profile(cases: int, out: Path, target: str = "tally", timeout_s: float = 600.0) -> None:
    settings = harness.base_settings(topic_prefix=harness.unique_prefix("pf"), partitions=4)
    names = TopicNames.from_settings(settings)
    relay_out = f"{settings.topic_prefix}.faust-relay-out"
    program: list[str]
    outputs: list[str]
    if target == "tally":
        program = ["-m", "ratifier", "tally", "run"]
        outputs = list(names.decisions)
    else:
        group = f"{settings.topic_prefix}.faust-relay"
        program = [str(harness.RUN_PY), "relay", "--engine", "faust"]
        program += ["--group", group, "--out", relay_out]
        outputs = [relay_out]
    async with harness.topics_for(settings, extra=[relay_out]):
        await harness.preload(settings, cases)
        # pyinstrument 5 fails under PYTHONSAFEPATH (it inspects sys.path[0]) and puts the cwd
        # on sys.path: run it without the flag from a folder holding no `ratifier/`.
        env = {**os.environ, **Fleet.env_for(settings)}
        env.pop("PYTHONSAFEPATH", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(out),
            *program, env=env, stdin=asyncio.subprocess.DEVNULL, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        try:
            await harness.count_records(settings, outputs, cases, timeout_s)
        finally:
            proc.send_signal(signal.SIGINT)
            await proc.wait()
    print(f"profile written to {out}")
