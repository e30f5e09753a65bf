"""``ratifier demo`` as a real process: it takes the global --prefix, writes --summary-json while
--keep-running holds it open, and SIGTERM or SIGINT stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from ratifier.core.config import Settings
from ratifier.core.polling import wait_until_sync
from ratifier.ops.fleet import Fleet

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_the_demo_keeps_running_then_a_signal_stops_it_and_all_its_children(
    settings: Settings, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    summary = tmp_path / "summary.json"
    env = {**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"}
    env["RATIFIER_TOPIC_PREFIX"] = "not-this-one"  # the global option wins
    out = (tmp_path / "demo.out").open("wb")
    command = [sys.executable, "-m", "ratifier", "--prefix", settings.topic_prefix, "demo"]
    options = ["--cases", "4", "--metrics-port", "0", "--review-port", "0", "--keep-running"]
    demo = subprocess.Popen(
        [*command, *options, "--summary-json", str(summary)],
        env=env,
        stdout=out,
        stderr=out,
        preexec_fn=_interruptible,
    )
    children: list[psutil.Process] = []
    try:

        def failed() -> str | None:
            code = demo.poll()
            return None if code is None else f"demo exited {code}: {_tail(tmp_path)}"

        wait_until_sync(summary.exists, timeout_s=180, what="the summary JSON", failed=failed)
        assert orjson.loads(summary.read_bytes())["cases"] == 4
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 8  # tally, six validators, generator, monitor
        demo.send_signal(stop_signal)
        assert demo.wait(timeout=60) == 0, _tail(tmp_path)  # the summary was shown and clean
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"still running after the demo stopped: {alive}"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for child in children:
            if child.is_running():
                child.kill()
        out.close()
    text = (tmp_path / "demo.out").read_text()
    assert text.startswith(f"demo: 4 cases on topics {settings.topic_prefix}.*")
    assert "Traceback" not in text


def _interruptible() -> None:
    """In the demo's process before it starts: SIGINT as a terminal delivers it. A suite started
    in the background by a shell without job control (``make test &``) has SIGINT ignored, and
    children inherit that, so the demo would never see its Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tail(folder: Path) -> str:
    return (folder / "demo.out").read_text()[-3000:]
