"""The faust worker the tally (and the benchmarks' faust relay) run in."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.policy import Policy
from ratifier.streams.engines.faust.agents import install_tally
from ratifier.streams.engines.faust.app import create_app
from ratifier.streams.engines.faust.worker import FaustWorker


async def test_the_worker_freezes_what_start_up_made_once_it_is_ready(tmp_path: Path) -> None:
    settings = Settings.from_env(None, state_dir=tmp_path)
    worker = FaustWorker(create_app(settings), settings)
    assert worker.spinner is None  # faust's spinner would set the root logger to DEBUG
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        await worker.on_startup_finished()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_faust_environment_variables_cannot_override_the_adapters_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # faust reads these unprefixed variables and would let them win over the app's settings.
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "99")
    monkeypatch.setenv("PRODUCER_MAX_REQUEST_SIZE", "5")
    monkeypatch.setenv("BROKER_COMMIT_INTERVAL", "60")
    settings = Settings.from_env(None, state_dir=tmp_path)
    conf = create_app(settings).conf
    assert conf.broker_session_timeout == 10.0
    assert conf.producer_max_request_size == settings.max_record_bytes
    assert conf.broker_commit_interval == 1.0


def test_the_faust_adapter_refuses_debate_policies_at_start(tmp_path: Path) -> None:
    settings = Settings.from_env(None, state_dir=tmp_path)
    debate = Policy.from_mapping(
        {"name": "d", "version": "1", "threshold": {"accepts": 1}, "debate": {},
         "validators": [{"id": "a"}]},
        "t",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"policies d have \[debate\]: .*transactional"):
        install_tally(create_app(settings), settings, {"d": debate})
