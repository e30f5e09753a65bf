"""The governance monitor: live consensus figures, alarms and Redis read models (issue 11)."""

from ratifier.runtimes.monitor.worker import MonitorWorker

__all__ = ["MonitorWorker"]
