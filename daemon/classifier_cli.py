"""Admin commands for the classifier (train, evaluate, classify, model, relabel).

Under construction: the commands are registered here as they land.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register_classifier_commands"]


def register_classifier_commands(commands: Any, tickets: Any, add: Any) -> None:
    """Add the classifier's subcommands to the ``complaintd`` parser."""
    del commands, tickets, add
