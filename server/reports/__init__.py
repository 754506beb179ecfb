"""Figures the workshop reports from its own database, with no time-series store."""

from server.reports.utilisation import MachineUtilisation, machine_utilisation

__all__ = ["MachineUtilisation", "machine_utilisation"]
