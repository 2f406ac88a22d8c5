"""The classifier's exceptions: one base, every error permanent (retrying cannot help)."""

from __future__ import annotations

__all__ = ["ClassifierError", "DataError", "ModelLoadError"]


class ClassifierError(Exception):
    """Base of every error the classifier raises on purpose; the message is one clear line."""


class ModelLoadError(ClassifierError):
    """A model file is missing, corrupt, tampered with, or holds types outside the allow-list."""


class DataError(ClassifierError):
    """Training or evaluation data cannot be used (missing file or column, empty, one label)."""
