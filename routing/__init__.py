"""Routing rules, tiers, SLA arithmetic and templates (pure; no I/O)."""

__all__: list[str] = []
