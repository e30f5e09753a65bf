"""Ratifier benchmarks against the real local broker; run with ``make bench`` (bench/run.py)."""
