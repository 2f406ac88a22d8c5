"""The complaintd process: CLI, settings, IMAP intake, outbox, scheduler and pipeline service."""

__all__: list[str] = []
