"""The review queue, its sessions and its figures, on Redis."""
