"""Saving and loading models with skops: versioned, checksummed, allow-listed types only.

A model folder holds ``model.skops`` (the fitted heads and the hashing settings),
``card.json`` (the model card) and one confusion-matrix picture per head. Loading
never unpickles. A file of plain data (dicts, lists, JSON scalars, numeric arrays:
what :func:`save_model` writes) is read by :mod:`classifier.skops_plain` without
importing skops, whose import pulls in scikit-learn (1.5 s in a fresh process).
Any other file goes through skops, which rebuilds only the types it trusts by
default (scikit-learn estimators, numpy arrays, builtins) plus those in
:data:`ALLOWED_TYPES`: the types a file holds are computed with
``skops.io.get_untrusted_types`` on every save and on such a load, and a file with
any type outside the allow-list is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classifier.errors import ClassifierError, ModelLoadError
from classifier.heads import Head
from classifier.predictor import DEFAULT_ABSTAIN_BELOW, ComplaintClassifier
from classifier.skops_plain import NotPlainDataError, read_plain
from classifier.vectorize import HashedFeatures

if TYPE_CHECKING:
    from classifier.training import TrainedModel

__all__ = [
    "ALLOWED_TYPES",
    "CARD_FILE",
    "MODEL_FILE",
    "MODEL_FORMAT",
    "SavedModel",
    "load_model",
    "model_version",
    "save_model",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
CARD_FILE = "card.json"
MODEL_FORMAT = 1
ALLOWED_TYPES: frozenset[str] = frozenset()
"""Types beyond skops's defaults that a model file may contain; anything else is refused.

Empty: a model file holds only numpy arrays and builtins (see :mod:`classifier.heads`),
which skops trusts by default. Widen this only for a reviewed type."""


@dataclass(frozen=True)
class SavedModel:
    """A model written to disk: the skops file, its SHA-256 and the model card."""

    path: Path
    sha256: str
    card: dict[str, Any]


def model_version(trained_at: datetime, sha256: str) -> str:
    """``YYYYMMDD-HHMMSS-<first 8 of sha256>``: sortable by time, tied to the file."""
    return f"{trained_at:%Y%m%d-%H%M%S}-{sha256[:8]}"


def save_model(trained: TrainedModel, directory: Path) -> SavedModel:
    """Write ``model.skops``, ``card.json`` and ``confusion_<head>.png`` into ``directory``.

    The card gains the version, the file's SHA-256 and size, and the non-default
    types the file holds (all within :data:`ALLOWED_TYPES`, or nothing is written).
    Raises :class:`ClassifierError` when ``directory`` cannot be written.
    """
    try:
        return _save_model(trained, directory)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ClassifierError(f"cannot write the model to {directory}: {reason}") from None


def _save_model(trained: TrainedModel, directory: Path) -> SavedModel:
    import skops.io  # noqa: PLC0415  (imports scikit-learn: only when saving)

    directory.mkdir(parents=True, exist_ok=True)
    classifier = trained.classifier
    payload = {
        "format": MODEL_FORMAT,
        "features": classifier.features.as_dict(),
        "heads": {
            name: None if head is None else _head_payload(head)
            for name, head in classifier.heads.items()
        },
        "languages": list(classifier.languages),
        "trained_at": trained.trained_at.isoformat(),
    }
    model_path = directory / MODEL_FILE
    partial = directory / f".{MODEL_FILE}.partial"
    # Stored, not deflated: the arrays are dense floats (zero weights are already
    # left out), which barely compress, and inflating them would slow every load.
    skops.io.dump(payload, partial, compression=zipfile.ZIP_STORED)
    untrusted = sorted(skops.io.get_untrusted_types(file=partial))
    unexpected = sorted(set(untrusted) - ALLOWED_TYPES)
    if unexpected:
        partial.unlink()
        raise ClassifierError(
            f"the model holds types outside the allow-list: {', '.join(unexpected)}"
        )
    os.replace(partial, model_path)
    sha256 = _sha256(model_path.read_bytes())
    card = {
        **trained.card,
        "version": model_version(trained.trained_at, sha256),
        "model_file": MODEL_FILE,
        "sha256": sha256,
        "size_bytes": model_path.stat().st_size,
        "non_default_types": untrusted,
    }
    _write_text(directory / CARD_FILE, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    # Here, not at the top: matplotlib is slow to import and only saving draws.
    from classifier.plots import write_confusion_png  # noqa: PLC0415

    for head, confusion in trained.confusion.items():
        write_confusion_png(confusion, directory / f"confusion_{head}.png", title=head)
    logger.info("model %s saved in %s", card["version"], directory)
    return SavedModel(model_path, sha256, card)


def load_model(
    path: Path,
    *,
    expected_sha256: str | None = None,
    abstain_below: float = DEFAULT_ABSTAIN_BELOW,
) -> ComplaintClassifier:
    """Load a model from its folder or its ``model.skops`` file.

    Raises :class:`ModelLoadError` when the file is missing or unreadable, its
    SHA-256 differs from ``expected_sha256`` (changed since it was registered), it
    is not a skops file, it holds a type outside :data:`ALLOWED_TYPES`, or it is not
    a complaintd model.
    """
    model_path = path / MODEL_FILE if path.is_dir() else path
    try:
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"no model file at {model_path}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {model_path} ({exc.strerror})") from None
    sha256 = _sha256(data)
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise ModelLoadError(
            f"{model_path} has changed since it was registered (SHA-256 {sha256[:12]}…, "
            f"expected {expected_sha256[:12]}…); refusing to load it"
        )
    payload = _safe_loads(data, model_path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelLoadError(f"{model_path} is not a complaintd model (format {MODEL_FORMAT})")
    try:
        features = HashedFeatures.from_dict(payload["features"])
        heads = payload["heads"]
        blocks = (2**features.word_bits, 2**features.char_bits)
        category = _head(heads["category"], blocks)
        severity = None if heads.get("severity") is None else _head(heads["severity"], blocks)
        trained_at = datetime.fromisoformat(str(payload["trained_at"]))
        languages = [str(code) for code in payload.get("languages") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{model_path} is not a usable complaintd model ({exc})") from None
    return ComplaintClassifier(
        features=features,
        category=category,
        severity=severity,
        languages=languages,
        version=model_version(trained_at, sha256),
        abstain_below=abstain_below,
    )


def _head_payload(head: Head) -> dict[str, Any]:
    return {
        "classes": list(head.classes),
        "idf": list(head.idf),
        "columns": head.columns,
        "weights": head.weights,
        "intercept": head.intercept,
        "temperature": head.temperature,
    }


def _head(value: Any, blocks: tuple[int, ...]) -> Head:
    """A head from its stored arrays; ``blocks`` are the feature blocks' sizes it must fit."""
    if not all(isinstance(label, str) and label for label in value["classes"]):
        raise ValueError("class labels must be non-empty strings")
    classes = tuple(value["classes"])
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError("a head needs two or more distinct class labels")
    idf = tuple(np.asarray(vector, dtype=np.float32) for vector in value["idf"])
    if tuple(len(vector) for vector in idf) != blocks:
        sizes = [len(vector) for vector in idf]
        raise ValueError(f"the head's idf blocks {sizes} do not match the features {list(blocks)}")
    columns = np.asarray(value["columns"], dtype=np.int32)
    weights = np.asarray(value["weights"], dtype=np.float32)
    intercept = np.asarray(value["intercept"], dtype=np.float64)
    temperature = float(value["temperature"])
    size = sum(len(vector) for vector in idf)
    if (
        weights.shape != (len(classes), len(columns))
        or intercept.shape != (len(classes),)
        or (len(columns) and (columns.min() < 0 or columns.max() >= size))
        or not temperature > 0
    ):
        raise ValueError("the head's arrays do not fit together")
    return Head(classes, idf, columns, weights, intercept, temperature)


def _safe_loads(data: bytes, model_path: Path) -> Any:
    try:
        return read_plain(data)
    except NotPlainDataError:
        pass  # not plain data (or damaged): skops audits it against the allow-list
    import skops.io  # noqa: PLC0415  (imports scikit-learn, hence not at the top)

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises zipfile, JSON and key errors for bad files
        raise ModelLoadError(f"{model_path} is not a readable skops file ({exc})") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ModelLoadError(
            f"{model_path} holds types outside the allow-list ({', '.join(refused)}); "
            "refusing to load it"
        )
    try:
        return skops.io.loads(data, trusted=sorted(ALLOWED_TYPES))
    except Exception as exc:  # a damaged file fails in many ways; all mean "cannot load"
        raise ModelLoadError(
            f"{model_path} cannot be loaded ({type(exc).__name__}: {exc})"
        ) from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); the card is as readable as the model.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
