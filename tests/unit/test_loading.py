"""Loading user code named on the command line: ``module:attribute`` plus ``key=value`` params."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from ratifier.app.cli.loading import load_target, parse_params
from ratifier.core.errors import ConfigError

MODULE = "ratifier_test_loading_target"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([], {}, id="none"),
        pytest.param(["n=3"], {"n": 3}, id="int"),
        pytest.param(["rate=0.25"], {"rate": 0.25}, id="float"),
        pytest.param(["on=true", "off=false"], {"on": True, "off": False}, id="bools"),
        pytest.param(["x=null"], {"x": None}, id="null"),
        pytest.param(['codes=["a","b"]'], {"codes": ["a", "b"]}, id="list"),
        pytest.param(['opts={"k":1}'], {"opts": {"k": 1}}, id="object"),
        pytest.param(['s="quoted"'], {"s": "quoted"}, id="json-string"),
        pytest.param(["name=hello world"], {"name": "hello world"}, id="plain-string"),
        pytest.param(["seed=007"], {"seed": "007"}, id="not-json-number"),
        pytest.param(["empty="], {"empty": ""}, id="empty-value"),
        pytest.param(["url=a=b=c"], {"url": "a=b=c"}, id="value-with-equals"),
        pytest.param(["k=1", "k=2"], {"k": 2}, id="last-wins"),
    ],
)
def test_parse_params(pairs: list[str], expected: dict[str, Any]) -> None:
    assert parse_params(pairs) == expected


@pytest.mark.parametrize("pair", ["novalue", "=3", "="])
def test_parse_params_rejects_pairs_without_key_or_equals(pair: str) -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_params(["ok=1", pair])


# --- load_target -------------------------------------------------------------------------------


class Judge:
    def __init__(self, threshold: float = 0.5, label: str = "default") -> None:
        self.threshold = threshold
        self.label = label

    def __call__(self, value: object) -> str:
        return f"{self.label}:{self.threshold}"


def plain_function(value: object) -> str:
    return "plain"


def make_judge(**params: Any) -> Judge:
    return Judge(**params)


def make_nothing(**params: Any) -> int:
    return 42


@pytest.fixture
def target_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(MODULE)
    module.Judge = Judge  # type: ignore[attr-defined]
    module.plain_function = plain_function  # type: ignore[attr-defined]
    module.make_judge = make_judge  # type: ignore[attr-defined]
    module.make_nothing = make_nothing  # type: ignore[attr-defined]
    module.CONSTANT = 7  # type: ignore[attr-defined]
    module.ns = types.SimpleNamespace(inner=plain_function)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, MODULE, module)
    return module


@pytest.mark.usefixtures("target_module")
def test_function_without_params_is_returned_itself() -> None:
    assert load_target(f"{MODULE}:plain_function") is plain_function


@pytest.mark.usefixtures("target_module")
@pytest.mark.parametrize("params", [None, {}])
def test_class_without_params_is_instantiated_with_defaults(params: dict[str, Any] | None) -> None:
    judge = load_target(f"{MODULE}:Judge", params)
    assert isinstance(judge, Judge)
    assert (judge.threshold, judge.label) == (0.5, "default")


@pytest.mark.usefixtures("target_module")
@pytest.mark.parametrize("factory", ["Judge", "make_judge"])
def test_factory_is_called_with_params(factory: str) -> None:
    judge = load_target(f"{MODULE}:{factory}", {"threshold": 0.9, "label": "x"})
    assert isinstance(judge, Judge)
    assert judge(None) == "x:0.9"


@pytest.mark.usefixtures("target_module")
def test_dotted_attribute_path() -> None:
    assert load_target(f"{MODULE}:ns.inner") is plain_function


def test_real_module_target() -> None:
    assert load_target("ratifier.app.cli.loading:parse_params") is parse_params


@pytest.mark.usefixtures("target_module")
@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        pytest.param("no_colon", None, "expected MODULE:CALLABLE", id="no-colon"),
        pytest.param(":Judge", None, "expected MODULE:CALLABLE", id="no-module"),
        pytest.param(f"{MODULE}:", None, "expected MODULE:CALLABLE", id="no-attribute"),
        pytest.param("ratifier_no_such_module_xyz:f", None, "cannot import", id="no-module-found"),
        pytest.param(f"{MODULE}:missing", None, "has no attribute 'missing'", id="no-attr"),
        pytest.param(f"{MODULE}:ns.missing", None, "has no attribute 'ns.missing'", id="dotted"),
        pytest.param(f"{MODULE}:CONSTANT", None, "is not callable", id="not-callable"),
        pytest.param(f"{MODULE}:make_nothing", {"a": 1}, "is not callable", id="factory-result"),
    ],
)
def test_bad_specs_raise_config_error(
    spec: str, params: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_target(spec, params)


def test_metadata_values_stay_text() -> None:
    from ratifier.app.cli.loading import parse_metadata

    assert parse_metadata(["flag=true", "x=null", 'l=["a"]', "eq=a=b"]) == {
        "flag": "true",
        "x": "null",
        "l": '["a"]',
        "eq": "a=b",
    }
    with pytest.raises(ConfigError):
        parse_metadata(["novalue"])


def test_unknown_factory_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_param"):
        load_target(
            "ratifier.validators.builtin.simulated:SimulatedValidator", {"no_such_param": 1}
        )
