"""Human review of escalated cases: the queue, the reviewer page, resolutions (docs/review.md)."""
