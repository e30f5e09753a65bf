"""The monitor's pure part: sliding windows, agreement statistics, figures and alarm rules."""
