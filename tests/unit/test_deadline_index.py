"""The deadline index: a heap with lazy invalidation, checked against a plain dict model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratifier.streams.rules.deadlines import DeadlineIndex


def drain(index: DeadlineIndex, now_ms: int) -> list[tuple[bytes, int]]:
    return list(index.pop_due(now_ms))


def test_empty_index() -> None:
    index = DeadlineIndex()
    assert (len(index), index.next_due_ms(), drain(index, 10**18)) == (0, None, [])


def test_pops_due_keys_in_due_order_with_their_partition() -> None:
    index = DeadlineIndex()
    index.schedule(b"c", 2, 300)
    index.schedule(b"a", 0, 100)
    index.schedule(b"b", 1, 200)
    index.schedule(b"later", 0, 1_000)
    assert index.next_due_ms() == 100
    assert drain(index, 99) == []
    assert drain(index, 300) == [(b"a", 0), (b"b", 1), (b"c", 2)]
    assert drain(index, 300) == []  # popped keys are gone
    assert (len(index), index.next_due_ms()) == (1, 1_000)


def test_keys_due_at_the_same_time_pop_in_key_order() -> None:
    index = DeadlineIndex()
    for key in (b"z", b"m", b"a"):
        index.schedule(key, 0, 50)
    assert [key for key, _ in drain(index, 50)] == [b"a", b"m", b"z"]


@pytest.mark.parametrize(
    ("schedules", "now", "popped", "next_due"),
    [
        pytest.param([100, 500], 499, [], 500, id="postponed-not-due-at-old-time"),
        pytest.param([100, 500], 500, [b"k"], None, id="postponed-due-once-at-new-time"),
        pytest.param([500, 100], 100, [b"k"], None, id="brought-forward"),
        pytest.param([100, None], 10**9, [], None, id="cleared"),
        pytest.param([100, None, 300], 300, [b"k"], None, id="cleared-then-rescheduled"),
        pytest.param([100, 200, 100], 100, [b"k"], None, id="back-to-first-time"),
        pytest.param([100, 200, 100], 200, [b"k"], None, id="back-to-first-time-yields-once"),
        pytest.param([100, 100, 100], 100, [b"k"], None, id="same-time-repeated"),
    ],
)
def test_reschedule_and_clear_supersede_earlier_entries(
    schedules: list[int | None], now: int, popped: list[bytes], next_due: int | None
) -> None:
    index = DeadlineIndex()
    for due in schedules:
        index.schedule(b"k", 4, due)
    assert [key for key, _ in drain(index, now)] == popped
    assert index.next_due_ms() == next_due
    assert len(index) == (0 if next_due is None else 1)


def test_clearing_an_unknown_key_is_a_no_op() -> None:
    index = DeadlineIndex()
    index.schedule(b"a", 0, 10)
    index.schedule(b"nope", 0, None)
    assert drain(index, 10) == [(b"a", 0)]


def test_next_due_skips_stale_entries() -> None:
    index = DeadlineIndex()
    index.schedule(b"a", 0, 10)
    index.schedule(b"b", 0, 20)
    index.schedule(b"a", 0, 30)
    index.schedule(b"b", 0, None)
    assert index.next_due_ms() == 30
    assert drain(index, 29) == []
    assert drain(index, 30) == [(b"a", 0)]


def test_stopping_a_drain_early_keeps_the_rest() -> None:
    index = DeadlineIndex()
    for n in range(5):
        index.schedule(bytes([n]), 0, n)
    first = next(index.pop_due(10))
    assert first == (b"\x00", 0)
    assert len(index) == 4
    assert [key for key, _ in drain(index, 10)] == [bytes([n]) for n in range(1, 5)]


def test_rebuild_replaces_contents_and_ignores_nothing_due() -> None:
    index = DeadlineIndex()
    index.schedule(b"old", 0, 1)
    index.rebuild([(b"a", 1, 20), (b"idle", 2, None), (b"b", 3, 10)])
    assert len(index) == 2
    assert index.next_due_ms() == 10
    assert drain(index, 100) == [(b"b", 3), (b"a", 1)]


def test_rebuild_accepts_a_generator() -> None:
    index = DeadlineIndex()
    index.rebuild((bytes([n]), n % 2, n) for n in range(4))
    assert drain(index, 3) == [(b"\x00", 0), (b"\x01", 1), (b"\x02", 0), (b"\x03", 1)]


def test_compaction_bounds_the_heap_and_keeps_behaviour() -> None:
    index = DeadlineIndex()
    index.schedule(b"steady", 1, 5_000)
    for due in range(10_000):  # one key rescheduled over and over: all but one entry stale
        index.schedule(b"busy", 0, 10_000 + due)
    assert len(index) == 2
    assert len(index._heap) <= 2 * len(index) + 1024 + 1
    assert index.next_due_ms() == 5_000
    assert drain(index, 19_998) == [(b"steady", 1)]
    assert drain(index, 19_999) == [(b"busy", 0)]
    assert len(index) == 0


# --- model-based -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    key: bytes
    due: int | None


@dataclass(frozen=True)
class Pop:
    now: int
    limit: int | None  # stop the drain after this many keys (None: all)


@dataclass(frozen=True)
class Rebuild:
    keys: tuple[tuple[bytes, int | None], ...]


def partition_of(key: bytes) -> int:
    return key[0] % 3  # as in Kafka: a key always lives on the same partition


keys = st.binary(min_size=1, max_size=2).map(lambda b: bytes([b[0] % 6]) + b[1:])
dues = st.none() | st.integers(0, 50)
operations = st.lists(
    st.one_of(
        st.builds(Schedule, keys, dues),
        st.builds(Pop, st.integers(0, 60), st.none() | st.integers(1, 3)),
        st.builds(Rebuild, st.lists(st.tuples(keys, dues), max_size=6).map(tuple)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_index_matches_a_dict_model(ops: list[Schedule | Pop | Rebuild]) -> None:
    index = DeadlineIndex()
    model: dict[bytes, int] = {}  # key -> due
    for op in ops:
        match op:
            case Schedule(key, due):
                index.schedule(key, partition_of(key), due)
                if due is None:
                    model.pop(key, None)
                else:
                    model[key] = due
            case Pop(now, limit):
                expected = sorted((due, key) for key, due in model.items() if due <= now)
                if limit is not None:
                    expected = expected[:limit]
                got = []
                for item in index.pop_due(now):
                    got.append(item)
                    if limit is not None and len(got) >= limit:
                        break
                assert got == [(key, partition_of(key)) for _, key in expected]
                for _, key in expected:
                    del model[key]
            case Rebuild(entries):
                index.rebuild((key, partition_of(key), due) for key, due in entries)
                model = {key: due for key, due in entries if due is not None}
        assert len(index) == len(model)
        assert index.next_due_ms() == min(model.values(), default=None)
