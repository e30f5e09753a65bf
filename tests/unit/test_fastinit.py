"""fast_init: the same ``__init__`` behaviour as the dataclass's own, by slot setters."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from ratifier.core.fastinit import fast_init


def _pair() -> tuple[type, type]:
    """The same frozen, slotted dataclass twice: as dataclasses makes it, and with fast_init."""

    def make() -> type:
        @dataclasses.dataclass(frozen=True, slots=True)
        class Sample:
            a: int
            b: str
            c: float = 1.5
            d: tuple[int, ...] = ()
            e: dict[str, int] = dataclasses.field(default_factory=dict)

        return Sample

    return make(), fast_init(make())


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1, "x"), {}),
    ((1, "x", 2.5), {}),
    ((1,), {"b": "y", "e": {"k": 1}}),
    ((), {"a": 1, "b": "x", "d": (3,)}),
    ((1, "x", 2.5, (1,), {"z": 2}), {}),
]
BAD_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, "x"), {"zz": 1}),
    ((1, "x", 1.0, (), {}, "extra"), {}),
    ((1, "x"), {"a": 2}),
]


def _outcome(make: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return ("ok", dataclasses.astuple(make(*args, **kwargs)))
    except TypeError as exc:
        return ("TypeError", str(exc))  # the message too, word for word


@pytest.mark.parametrize(("args", "kwargs"), CALLS + BAD_CALLS)
def test_same_objects_and_same_errors_as_the_dataclass_init(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = _pair()
    assert _outcome(fast, args, kwargs) == _outcome(plain, args, kwargs)


def test_default_factories_give_a_fresh_value_each_time() -> None:
    _, fast = _pair()
    one, two = fast(1, "x"), fast(1, "x")
    assert one.e == {} and one.e is not two.e  # noqa: PT018


def test_still_frozen_hashable_and_equal_to_a_plainly_built_one() -> None:
    _, fast = _pair()
    record = fast(1, "x", d=(2,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.a = 2
    assert record == fast(1, "x", 1.5, (2,), {})
    assert dataclasses.replace(record, a=3).a == 3
    plain, _ = _pair()
    fast_params = inspect.signature(fast).parameters
    plain_params = inspect.signature(plain).parameters
    assert list(fast_params) == list(plain_params)
    for name in ("c", "d"):
        assert fast_params[name].default == plain_params[name].default
    assert repr(fast_params["e"].default) == "<factory>"


@dataclasses.dataclass(frozen=True)
class _NotSlotted:
    a: int


@dataclasses.dataclass(slots=True)
class _NotFrozen:
    a: int


@dataclasses.dataclass(frozen=True, slots=True)
class _PostInit:
    a: int

    def __post_init__(self) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class _NotInInit:
    a: int
    b: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class _WithClassVar:
    a: int
    LIMIT: ClassVar[int] = 3


@pytest.mark.parametrize("cls", [_NotSlotted, _NotFrozen, _PostInit, _NotInInit, _WithClassVar])
def test_anything_but_the_plain_case_is_refused(cls: type) -> None:
    with pytest.raises(TypeError):
        fast_init(cls)
