"""The monitor's worker: the decision and verdict streams in, figures, alerts and gauges out."""
