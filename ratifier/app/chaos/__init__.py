"""The chaos suite: the demo pipeline under load while faults hit it, then a check of every output.

Each scenario runs the demo's processes on fresh topics, produces a load of cases, applies one
fault pattern repeatedly (crashes, pauses, scaling, broker restarts, bad input), waits until the
pipeline is quiet, then reads every output topic back (read_committed) and checks the rules in
:mod:`ratifier.app.chaos.checker`. ``ratifier chaos run`` prints one table; see docs/chaos.md.
"""
