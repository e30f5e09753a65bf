"""The transactional tally's local state: each input partition's committed entries, kept in
memory or on disk (RocksDB), with the changelog offset they reflect (the checkpoint), and an
overlay of the open transaction's changes on top (``partition.PartitionStore``)."""
