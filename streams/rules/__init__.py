"""The tally's pure rules: no I/O, no Kafka, no engine. Decisions (``tally``), case state and its
rows (``state``, ``rows``), signature checks, deadlines, partition time, size limits, the
finished-case markers' encoding, the pass confidence (``consensus``) and learned weights."""
