"""Fixtures for tests that run through the real local stack (Kafka broker + redis-server).

``stack`` starts the stack once per session if it is not running and leaves it running, so the
next run starts at once. ``settings`` gives every test its own topic prefix, with its topics
created, and deletes them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ratifier.core.config import ENV_PREFIX, Settings
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.ops import stack as local_stack
from ratifier.ops.stack import StackStatus


def _anchored(config: pytest.Config) -> dict[str, Any]:
    """Put state and cache in the project root, not the cwd, unless the environment says where.

    Then `pytest` from any folder finds the stack `make stack-up` started.
    """
    root = config.rootpath
    overrides: dict[str, Any] = {}
    if not os.environ.get(f"{ENV_PREFIX}STATE_DIR"):
        overrides["state_dir"] = root / ".state"
    if not os.environ.get(f"{ENV_PREFIX}CACHE_DIR"):
        overrides["cache_dir"] = root / ".cache"
    return overrides


@pytest.fixture(scope="session")
def base_settings(pytestconfig: pytest.Config) -> Settings:
    return Settings.from_env(**_anchored(pytestconfig))


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> StackStatus:
    status = local_stack.status(base_settings)
    if not status.running:
        status = local_stack.up(base_settings)
    return status  # left running on purpose


@pytest.fixture
async def settings(stack: StackStatus, base_settings: Settings) -> AsyncIterator[Settings]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings = base_settings.with_overrides(topic_prefix=prefix)
    await ensure_topics(settings)
    yield settings
    # Every topic the test made carries the prefix: Ratifier's (prefix.) and faust's (prefix-).
    async with admin_client(settings) as admin:
        ours = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
    await delete_topics(settings, ours)


@pytest.fixture
def unique_group() -> Callable[[str], str]:
    """``unique_group("name")`` -> a consumer group id no other test or run uses."""

    def make(name: str = "group") -> str:
        return f"g-{name}-{uuid.uuid4().hex[:12]}"

    return make
