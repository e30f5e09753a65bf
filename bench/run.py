"""``make bench``: run the benchmarks against the local broker, print a table, write JSON.

    .venv/bin/python bench/run.py [--quick] [--only throughput,latency,memory,scaling]
                                  [--engine transactional|faust|both]
                                  [--cases K] [--open-windows N] [--prune-cases N]

Run as a script (PYTHONSAFEPATH keeps the project root off sys.path, and putting it there would
let the source folder ``ratifier/`` shadow the installed package), so the ``bench`` package is
loaded from this file's folder explicitly.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path


def _load_bench_package() -> None:
    here = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        "bench", here / "__init__.py", submodule_search_locations=[str(here)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)


def main(argv: list[str] | None = None) -> int:
    _load_bench_package()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["relay"]:  # the baseline relay's own process (see bench/relay.py)
        from bench import relay

        parser = argparse.ArgumentParser(prog="bench/run.py relay")
        parser.add_argument("--group", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--engine", choices=relay.ENGINES, default="raw")
        ns = parser.parse_args(args[1:])
        return relay.main(ns.engine, ns.group, ns.out)

    if args[:1] == ["profile"]:
        from bench import profile

        parser = argparse.ArgumentParser(prog="bench/run.py profile")
        parser.add_argument("--cases", type=int, default=5000)
        parser.add_argument("--out", type=Path, default=Path("tally-profile.txt"))
        parser.add_argument("--target", choices=profile.TARGETS, default="tally")
        ns = parser.parse_args(args[1:])
        asyncio.run(profile.profile(ns.cases, ns.out, ns.target))
        return 0

    if args[:1] == ["codec"]:  # the wire codec alone, offline (see bench/codec.py)
        from bench import codec

        parser = argparse.ArgumentParser(prog="bench/run.py codec")
        parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per side")
        parser.add_argument("--baseline", metavar="REV", help="also measure this commit, same run")
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
        ns = parser.parse_args(args[1:])
        return codec.main(ns.rounds, ns.baseline, ns.child)

    if args[:1] == ["debate"]:  # debate rounds with simulated judges, offline (bench/debate.py)
        from bench import debate

        parser = argparse.ArgumentParser(prog="bench/run.py debate")
        parser.add_argument("--cases", type=int, default=4_000)
        parser.add_argument("--error-rate", type=float, default=0.25)
        parser.add_argument("--seed", type=int, default=1)
        ns = parser.parse_args(args[1:])
        return debate.main(ns.cases, ns.error_rate, ns.seed)

    if args[:1] == ["packets"]:  # complete packets' cost, offline (see bench/packets.py)
        from bench import packets

        parser = argparse.ArgumentParser(prog="bench/run.py packets")
        parser.add_argument("--cases", type=int, default=5_000)
        parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side")
        parser.add_argument("--partitions", type=int, default=4)
        ns = parser.parse_args(args[1:])
        return packets.main(ns.cases, ns.rounds, ns.partitions)

    if args[:1] == ["processor"]:  # the processor alone, offline (see bench/processor.py)
        from bench import processor

        parser = argparse.ArgumentParser(prog="bench/run.py processor")
        parser.add_argument("--cases", type=int, default=20_000)
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--partitions", type=int, default=4)
        parser.add_argument("--save", type=Path, help="write the figures as JSON")
        parser.add_argument("--against", type=Path, help="an earlier --save: print before/after")
        parser.add_argument(
            "--baseline", metavar="REV", help="also measure this commit, rounds interleaved"
        )
        parser.add_argument("--rounds", type=int, default=3, help="rounds per side (--baseline)")
        ns = parser.parse_args(args[1:])
        if ns.baseline is not None:
            return processor.against_commit(ns.baseline, ns.rounds, ns.cases, ns.runs)
        return processor.main(ns.cases, ns.runs, ns.partitions, ns.save, ns.against)

    if args[:1] == ["finished"]:  # remembering finished cases (see bench/finished.py)
        from bench import finished

        parser = argparse.ArgumentParser(prog="bench/run.py finished")
        parser.add_argument("--only", default="restart,stores", help="restart, stores")
        parser.add_argument("--markers", type=int, default=10_000_000)
        parser.add_argument("--open-cases", type=int, default=10_000)
        parser.add_argument("--cases", type=int, default=10_000, help="stores: throughput input")
        parser.add_argument("--rounds", type=int, default=3, help="stores: rounds per store")
        parser.add_argument("--rate", type=float, default=300.0, help="stores: p99's rate")
        parser.add_argument("--duration", type=float, default=20.0, help="stores: p99's seconds")
        parser.add_argument(
            "--stores-markers", type=int, default=1_000_000, help="stores: markers held first"
        )
        parser.add_argument("--timeout", type=float, default=1800.0)
        parser.add_argument("--out", type=Path, help="write the figures as JSON")
        ns = parser.parse_args(args[1:])
        return finished.main(
            ns.only.split(","),
            ns.markers,
            ns.open_cases,
            ns.cases,
            ns.rounds,
            ns.rate,
            ns.duration,
            ns.timeout,
            ns.out,
            ns.stores_markers,
        )

    from bench import suite

    return asyncio.run(suite.main(args))


if __name__ == "__main__":
    sys.exit(main())
