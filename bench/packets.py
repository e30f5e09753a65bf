"""``bench/run.py packets``: what complete packets cost the processor, offline, in one run.

The processor benchmark's records (``bench/processor.py``: one candidate and five verdicts per
case, ``sim-d`` rejecting, ``redteam`` last) under the built-in policy made to fail: 4 of 4
accepts and one attempt, so ``sim-d``'s rejection makes every case's failure certain and each
case escalates. With ``complete_packets = false`` the escalation is decided at that rejection
and ``redteam``'s verdict arrives late; with ``true`` it waits for ``redteam`` and the packet
carries every verdict. Both sides run on the same batches, rounds interleaved; the figures are
CPU µs per record (medians) and the mean escalation packet size, with their ratios.

Not measured here: the time a held failure waits, which is the gap between the deciding verdict
and the slowest validator's (at most the window), set by the validators, not the tally.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from bench import processor
from ratifier.core.policy import Policy, Threshold, load_policies
from ratifier.core.topics import TopicNames
from ratifier.streams.processor import Outgoing


def failing_policy(complete: bool) -> dict[str, Policy]:
    default = load_policies()["default"]
    policy = replace(
        default, threshold=Threshold(accepts=4), max_attempts=1, complete_packets=complete
    )
    return {policy.name: policy}


def _packet_bytes(outputs: list[Outgoing], escalations: str) -> float:
    sizes = [len(o.value) for o in outputs if o.topic == escalations]
    return statistics.mean(sizes) if sizes else 0.0


def main(cases: int, rounds: int, partitions: int) -> int:
    batches = processor.build_batches(cases, partitions)
    records = sum(len(b) for b in batches)
    sides = {False: failing_policy(False), True: failing_policy(True)}
    processor.run_once(batches[: max(1, len(batches) // 10)], partitions, sides[False])  # warm-up
    micros: dict[bool, list[float]] = {False: [], True: []}
    packet: dict[bool, float] = {}
    escalations = TopicNames(processor.PREFIX).escalate
    for _ in range(rounds):
        for complete, policies in sides.items():
            outputs: list[Outgoing] = []
            took, done = processor.run_once(batches, partitions, policies, outputs)
            escalated = done.stats.decisions.get(escalations, 0)
            if escalated != cases or done.stats.dead_letters:
                raise AssertionError(
                    f"expected {cases} escalations and no dead letters, got "
                    f"{dict(done.stats.decisions)} and {dict(done.stats.dead_letters)}"
                )
            micros[complete].append(took / records * 1e6)
            packet[complete] = _packet_bytes(outputs, escalations)
    off, on = (statistics.median(micros[side]) for side in (False, True))
    print(f"packets: {cases} failing cases, {records} records, median of {rounds} rounds")
    print(f"  complete_packets = false: {off:.2f} µs per record, packet {packet[False]:.0f} B")
    print(f"  complete_packets = true:  {on:.2f} µs per record, packet {packet[True]:.0f} B")
    print(f"  ratio true/false: {on / off:.3f}x CPU, {packet[True] / packet[False]:.3f}x bytes")
    return 0
