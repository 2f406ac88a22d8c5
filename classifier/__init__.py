"""Text preparation and the category/severity model.

The light parts (text preparation, signals, language detection, data loading, the
:class:`Prediction` type, errors) are imported with the package; the parts that need
scikit-learn are imported on first use, so ``complaintd parse`` and the mail parser,
which use :mod:`classifier.textprep`, do not pay for loading scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from classifier.data import (
    LabelledExample,
    default_training_files,
    effective_folds,
    load_examples,
)
from classifier.errors import ClassifierError, DataError, ModelLoadError
from classifier.language import detect_language
from classifier.prediction import Prediction
from classifier.signals import Signal, find_signals
from classifier.taxonomy import DEFAULT_CATEGORIES, SEVERITIES, UNCLASSIFIED
from classifier.textprep import prepare_text, strip_quoted_and_signature

if TYPE_CHECKING:
    from classifier.evaluation import evaluate
    from classifier.predictor import ComplaintClassifier
    from classifier.store import SavedModel, load_model, save_model
    from classifier.training import Confusion, TrainedModel, train_model

__all__ = [
    "DEFAULT_CATEGORIES",
    "SEVERITIES",
    "UNCLASSIFIED",
    "ClassifierError",
    "ComplaintClassifier",
    "Confusion",
    "DataError",
    "LabelledExample",
    "ModelLoadError",
    "Prediction",
    "SavedModel",
    "Signal",
    "TrainedModel",
    "default_training_files",
    "detect_language",
    "effective_folds",
    "evaluate",
    "find_signals",
    "load_examples",
    "load_model",
    "prepare_text",
    "save_model",
    "strip_quoted_and_signature",
    "train_model",
]

_LAZY = {
    "ComplaintClassifier": "classifier.predictor",
    "Confusion": "classifier.training",
    "SavedModel": "classifier.store",
    "TrainedModel": "classifier.training",
    "evaluate": "classifier.evaluation",
    "load_model": "classifier.store",
    "save_model": "classifier.store",
    "train_model": "classifier.training",
}


def __getattr__(name: str) -> Any:
    """Import the scikit-learn parts of the public API when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'classifier' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
