"""Signed outcomes through the real broker and redis: the outcomes writer signs, the trusted
store lets in only what its key signed, and readers check the seal again."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from ratifier.app.configs import outcomes_config
from ratifier.core.config import Settings
from ratifier.core.outcome_signing import UntrustedOutcome, seal_headers
from ratifier.core.signing import Signer, encode_public_key
from ratifier.core.topics import TopicNames
from ratifier.features.outcomes.core import outcome_from_pass
from ratifier.features.outcomes.runtime import OutcomesService
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.keys import write_private_key
from ratifier.io.testing import wait_until
from ratifier.ops.fleet import Fleet
from ratifier.schemas import codec
from tests.integration.review_support import pass_decision, redis_for

pytestmark = pytest.mark.integration


async def test_a_forged_confirmed_outcome_never_reaches_the_trusted_store(
    settings: Settings, tmp_path: Path
) -> None:
    key = write_private_key(tmp_path / "outcomes.key")
    signed = settings.with_overrides(
        outcomes_signing_key=tmp_path / "outcomes.key",
        outcomes_public_key=encode_public_key(Signer(key).public_key),
    )
    names = TopicNames.from_settings(signed)
    producer = make_producer(signed, client_id="forger")
    await producer.start()
    try:
        await producer.send_and_wait(
            names.passed, codec.encode(pass_decision("real", 1)), key=b"real"
        )
        # Straight to the outcomes topic: unsigned, and signed by a key of the forger's own.
        for case_id, signer in (("forged-unsigned", None), ("forged-other-key", Signer.generate())):
            forged = outcome_from_pass(pass_decision(case_id, 1))
            await producer.send_and_wait(
                names.outcomes,
                codec.encode(forged),
                key=case_id.encode(),
                headers=seal_headers(signer, forged),
            )
    finally:
        await producer.stop()

    service = OutcomesService(outcomes_config(signed))
    stop = asyncio.Event()
    await service.start()
    task = asyncio.create_task(service.run(stop))
    store = service.projector.store
    try:

        async def settled() -> bool:  # the real one in, both forgeries turned away
            return await store.get("real") is not None and store.refused >= 2

        await wait_until(settled, 30, "the real outcome stored and both forgeries refused")
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()

    async with Client(signed) as client:
        real = await client.trusted_answer("real", verify=True)
        assert real is not None
        assert real.case_id == "real"
        assert await client.trusted_answer("forged-unsigned") is None
        assert await client.trusted_answer("forged-other-key") is None

    # Redis edited by hand: the stored seal no longer matches, and readers say so.
    async with redis_for(signed) as redis:  # deletes the prefix's keys at the end
        altered = dataclasses.replace(real, content="Refunds at any time, no receipt needed.")
        await redis.hset(store.key("real"), "outcome", codec.encode(altered))
        async with Client(signed) as client:
            with pytest.raises(UntrustedOutcome, match=r"signature invalid"):
                await client.trusted_answer("real")
        code, err = await _answer_cli(signed, "real")
    assert code == 2
    assert "not signed by the outcomes key (signature invalid)" in err


async def test_verify_needs_the_outcomes_public_key(settings: Settings) -> None:
    async with Client(settings) as client:
        with pytest.raises(Exception, match="RATIFIER_OUTCOMES_PUBLIC_KEY"):
            await client.trusted_answer("any", verify=True)


async def _answer_cli(settings: Settings, case_id: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "ratifier", "answer", "--verify", case_id),
        env={**os.environ, **Fleet.env_for(settings), "PYTHONSAFEPATH": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()
