"""Routing by policy: a validator judges a candidate only when its policy lists the validator;
policy changes are picked up on the next check."""

from __future__ import annotations

import os
from pathlib import Path

from ratifier.io.testing import write_policy
from ratifier.validators.routing import RECHECK_S, PolicyRouting


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_listed_policies_are_judged_and_others_are_not(tmp_path: Path) -> None:
    write_policy(tmp_path, "alpha", ["a1", "x"], accepts=1, window_seconds=5, max_attempts=1)
    write_policy(tmp_path, "beta", ["b1", "x"], accepts=1, window_seconds=5, max_attempts=1)
    a1 = PolicyRouting("a1", tmp_path)
    x = PolicyRouting("x", tmp_path)
    assert (a1.judges("alpha"), a1.judges("beta")) == (True, False)
    assert (x.judges("alpha"), x.judges("beta")) == (True, True)


def test_an_unknown_policy_is_judged_rather_than_lost(tmp_path: Path) -> None:
    write_policy(tmp_path, "alpha", ["a1"], accepts=1, window_seconds=5, max_attempts=1)
    assert PolicyRouting("a1", tmp_path).judges("not-loaded-here")


def test_a_changed_policy_is_used_after_the_recheck_interval(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "alpha", ["a1"], accepts=1, window_seconds=5, max_attempts=1)
    clock = Clock()
    b1 = PolicyRouting("b1", tmp_path, clock=clock)
    assert not b1.judges("alpha")
    write_policy(tmp_path, "alpha", ["a1", "b1"], accepts=1, window_seconds=5, max_attempts=1)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the file system's grain
    clock.now += RECHECK_S / 2
    assert not b1.judges("alpha")  # not looked at yet
    clock.now += RECHECK_S
    assert b1.judges("alpha")


def test_a_new_policy_file_is_found_when_a_candidate_names_it(tmp_path: Path) -> None:
    write_policy(tmp_path, "alpha", ["a1"], accepts=1, window_seconds=5, max_attempts=1)
    clock = Clock()
    a1 = PolicyRouting("a1", tmp_path, clock=clock)
    write_policy(tmp_path, "gamma", ["g1"], accepts=1, window_seconds=5, max_attempts=1)
    clock.now += RECHECK_S
    assert not a1.judges("gamma")  # loaded on demand: gamma does not list a1


def test_a_broken_folder_keeps_the_policies_loaded_before(tmp_path: Path) -> None:
    write_policy(tmp_path, "alpha", ["a1"], accepts=1, window_seconds=5, max_attempts=1)
    clock = Clock()
    a1 = PolicyRouting("a1", tmp_path, clock=clock)
    (tmp_path / "broken.toml").write_text("not = [valid")
    clock.now += RECHECK_S
    assert a1.judges("alpha")
