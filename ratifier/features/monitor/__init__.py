"""The governance monitor: live consensus figures, alarms and Redis read models (issue 11)."""
