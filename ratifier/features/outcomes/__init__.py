"""Final outcomes: one per case on <prefix>.outcomes, and the trusted answers store."""
