"""``import ratifier`` is the public surface: every exported name resolves, nothing else leaks."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import ratifier
from ratifier.core import config, errors, models, policy
from ratifier.io import client
from ratifier.runtimes import generator

EXPECTED = {
    "Client": client.Client,
    "SyncClient": client.SyncClient,
    "Settings": config.Settings,
    "RatifierError": errors.RatifierError,
    "ConfigError": errors.ConfigError,
    "PolicyError": errors.PolicyError,
    "WireFormatError": errors.WireFormatError,
    "ValidatorError": errors.ValidatorError,
    "ValidatorTimeout": errors.ValidatorTimeout,
    "Revision": generator.Revision,
    "Candidate": models.Candidate,
    "Verdict": models.Verdict,
    "Judgement": models.Judgement,
    "Vote": models.Vote,
    "Severity": models.Severity,
    "Reason": models.Reason,
    "Span": models.Span,
    "PassDecision": models.PassDecision,
    "RetryRequest": models.RetryRequest,
    "EscalationPacket": models.EscalationPacket,
    "AttemptRecord": models.AttemptRecord,
    "DeadLetter": models.DeadLetter,
    "DeadLetterReason": models.DeadLetterReason,
    "FailureReason": models.FailureReason,
    "OutcomeClass": models.OutcomeClass,
    "EscalationReason": models.EscalationReason,
    "Decision": models.Decision,
    "Policy": policy.Policy,
    "load_policies": policy.load_policies,
}


def test_all_is_sorted_unique_and_public() -> None:
    assert ratifier.__all__ == sorted(set(ratifier.__all__))
    assert not [name for name in ratifier.__all__ if name.startswith("_")]


def test_all_exports_exactly_the_user_facing_names() -> None:
    assert set(ratifier.__all__) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_name_is_the_defining_module_object(name: str) -> None:
    assert getattr(ratifier, name) is EXPECTED[name]


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from ratifier import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ratifier.__all__)


@pytest.mark.parametrize(
    "name", ["_EXPORTS_", "client_", "Tally", "now_ms", "codec", "annotations"]
)
def test_unknown_names_raise_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=repr(name)):
        getattr(ratifier, name)


def test_from_import_of_an_unknown_name_fails() -> None:
    with pytest.raises(ImportError):
        exec("from ratifier import TallyProcessor", {})


def test_dir_lists_the_public_names() -> None:
    public = {name for name in dir(ratifier) if not name.startswith("_")}
    assert set(ratifier.__all__) <= public
    # Besides the exports, only submodules (attributes set by importing them) may show.
    extra = public - set(ratifier.__all__)
    assert all(isinstance(getattr(ratifier, name), types.ModuleType) for name in extra), extra


def _fresh_python(code: str, cwd: Path) -> object:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={"PYTHONSAFEPATH": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


_PROBE = """
import json, sys
import ratifier
heavy = ("faust", "mode", "aiokafka", "fastavro")
loaded = lambda: sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
bare = loaded()
names = sorted(n for n in vars(ratifier) if not n.startswith("_"))
for name in ratifier.__all__:
    getattr(ratifier, name)
print(json.dumps({"bare": bare, "names": names, "after": loaded()}))
"""


def test_import_is_light_and_never_imports_faust(tmp_path: Path) -> None:
    report = _fresh_python(_PROBE, tmp_path)
    assert report == {
        "bare": [],  # nothing heavy until a name is used
        "names": [],  # nothing public in the namespace but what __getattr__ provides
        "after": ["aiokafka", "fastavro"],  # the client needs Kafka; the tally's faust never
    }
