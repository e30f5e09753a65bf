"""Feature packages: one product area each (review, monitor, outcomes), layered inside.

They sit above the shared base (core, schemas, io, runtimes, ops) and below ``ratifier.app``,
which wires them into the ``ratifier`` command; see docs/architecture.md.
"""
