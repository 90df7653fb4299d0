"""Agents layer: incident intake, investigation worker and (later) the supervisor graph."""
