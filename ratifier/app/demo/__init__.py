"""The demo: a tally, five simulated validator groups and a generator on the local stack."""
