"""Training and cross-validation: labelled examples in, a :class:`TrainedModel` out."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
from sklearn.metrics import precision_recall_fscore_support as prfs
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from tqdm import tqdm

from classifier.data import LabelledExample, check_labels, data_sha256, effective_folds
from classifier.errors import DataError
from classifier.heads import Head, ModelConfig, fit_idf, softmax, tfidf
from classifier.language import detect_languages
from classifier.predictor import DEFAULT_ABSTAIN_BELOW, ComplaintClassifier
from classifier.signals import find_signals
from classifier.taxonomy import cap_severity, is_default_scale, max_severity
from classifier.textprep import prepare_text

__all__ = [
    "CARD_FORMAT",
    "DEFAULT_CONFIG",
    "Confusion",
    "CrossValidation",
    "TrainedModel",
    "cross_validate",
    "fit_head",
    "fit_temperature",
    "metrics",
    "train_model",
]

logger = logging.getLogger(__name__)

CARD_FORMAT = 1
DEFAULT_CONFIG = ModelConfig()
# A language is one the model "knows" when this share of the examples is in it.
_LANGUAGE_SHARE = 0.02
_ECE_BINS = 10
_TEMPERATURE_BOUNDS = (-4.0, 4.0)  # log of the temperature: 0.02 .. 55


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix from cross-validation: rows are true labels, columns predicted."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


@dataclass
class TrainedModel:
    """A fitted classifier with its model card and cross-validated confusion matrices."""

    classifier: ComplaintClassifier
    card: dict[str, Any]
    confusion: dict[str, Confusion] = field(default_factory=dict)
    trained_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def train_model(
    examples: Sequence[LabelledExample],
    *,
    seed: int = 0,
    cv_folds: int = 5,
    progress: bool = True,
    config: ModelConfig = DEFAULT_CONFIG,
) -> TrainedModel:
    """Fit the category head (and the severity head when the data has severities).

    The metrics in the card come from stratified ``cv_folds``-fold cross-validation
    (seeded; fewer folds when the rarest label has fewer examples). The same
    out-of-fold decision values fit the probability temperature, so ``cv_folds``
    must be at least 2. Same examples and seed, same model.

    Raises :class:`DataError` when there are fewer than two labels or a label has
    only one example.
    """
    started = time.perf_counter()
    trained_at = datetime.now(UTC).replace(microsecond=0)
    if not examples:
        raise DataError("no examples to train on")
    if cv_folds < 2:
        raise ValueError("cv_folds must be at least 2 (the temperature is fitted out of fold)")
    categories = [example.category for example in examples]
    check_labels(categories, "category labels")
    _check_counts(categories, "category")
    severity_rows, severity_note = _severity_rows(examples)
    with _progress(progress, total=2, desc="preparing text") as bar:
        texts = [prepare_text(example.subject, example.body) for example in examples]
        bar.update()
        counts = config.features.transform(texts)
        bar.update()
    heads: dict[str, tuple[list[int], list[str]]] = {
        "category": (list(range(len(examples))), categories)
    }
    if severity_rows:
        heads["severity"] = (
            severity_rows,
            [str(examples[index].severity) for index in severity_rows],
        )
    card_heads: dict[str, Any] = {}
    confusions: dict[str, Confusion] = {}
    fitted: dict[str, Any] = {}
    for head, (rows, labels) in heads.items():
        head_counts = [block[rows] for block in counts]
        evaluation = cross_validate(
            head_counts, labels, seed=seed, folds=cv_folds, progress=progress,
            config=config, desc=f"cross-validating {head}",
        )  # fmt: skip
        card_heads[head] = {
            "labels": list(evaluation.labels),
            "label_counts": dict(sorted(Counter(labels).items())),
            "temperature": round(evaluation.temperature, 4),
            "cv": evaluation.summary,
        }
        confusions[head] = evaluation.confusion
        if head == "severity":
            card_heads[head]["cv_with_signal_floors"] = _with_floors(
                evaluation, [texts[index] for index in rows]
            )
        else:
            card_heads[head]["abstention"] = evaluation.abstention(DEFAULT_ABSTAIN_BELOW)
        with _progress(progress, total=1, desc=f"fitting {head}") as bar:
            fitted[head] = fit_head(
                head_counts, labels, config, seed=seed, temperature=evaluation.temperature
            )
            bar.update()
    languages = _languages(examples, texts)
    classifier = ComplaintClassifier(
        features=config.features,
        category=fitted["category"],
        severity=fitted.get("severity"),
        languages=languages,
        version=f"{trained_at:%Y%m%d-%H%M%S}-unsaved",
    )
    card = {
        "card_format": CARD_FORMAT,
        "trained_at": trained_at.isoformat(),
        "seed": seed,
        "cv_folds": cv_folds,
        "data": {
            "sha256": data_sha256(examples),
            "examples": len(examples),
            "languages": dict(sorted(Counter(e.language or "unknown" for e in examples).items())),
        },
        "languages": list(languages),
        "heads": card_heads,
        "severity_head": "severity" in fitted,
        "severity_note": severity_note,
        "abstain_below_default": DEFAULT_ABSTAIN_BELOW,
        "parameters": {**config.as_dict(), "features": config.features.as_dict()},
        "libraries": _library_versions(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    return TrainedModel(classifier, card, confusions, trained_at)


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities of one head, and what follows from them."""

    labels: tuple[str, ...]
    truth: np.ndarray[Any, Any]
    decisions: np.ndarray[Any, Any]
    temperature: float
    folds: int

    @property
    def probabilities(self) -> np.ndarray[Any, Any]:
        """Calibrated out-of-fold probabilities."""
        return softmax(self.decisions / self.temperature)

    @property
    def predicted(self) -> np.ndarray[Any, Any]:
        """The best label of each example."""
        labels: np.ndarray[Any, Any] = np.asarray(self.labels, dtype=object)
        result: np.ndarray[Any, Any] = labels[self.probabilities.argmax(axis=1)]
        return result

    @property
    def summary(self) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class scores, log loss and calibration error."""
        result = metrics(list(self.truth), [str(p) for p in self.predicted])
        result["folds"] = self.folds
        result["log_loss"] = round(
            float(log_loss(self.truth, self.probabilities, labels=list(self.labels))), 4
        )
        result["ece"] = round(self._ece(), 4)
        return result

    @property
    def confusion(self) -> Confusion:
        """The confusion matrix of the out-of-fold predictions."""
        matrix = confusion_matrix(self.truth, self.predicted.astype(str), labels=list(self.labels))
        return Confusion(self.labels, tuple(tuple(int(v) for v in row) for row in matrix))

    def abstention(self, threshold: float) -> dict[str, Any]:
        """How many mails a threshold leaves classified, and how accurate those are."""
        confidence = self.probabilities.max(axis=1)
        kept = confidence >= threshold
        correct = self.predicted.astype(str) == self.truth
        return {
            "abstain_below": threshold,
            "coverage": round(float(kept.mean()), 4),
            "accuracy_when_classified": round(float(correct[kept].mean()), 4)
            if kept.any()
            else None,
        }

    def _ece(self) -> float:
        """Expected calibration error of the top label (10 equal-width bins)."""
        confidence = self.probabilities.max(axis=1)
        correct = self.predicted.astype(str) == self.truth
        total = 0.0
        edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)
        for low, high in pairwise(edges):
            in_bin = (confidence > low) & (confidence <= high)
            if in_bin.any():
                gap = abs(float(correct[in_bin].mean()) - float(confidence[in_bin].mean()))
                total += float(in_bin.mean()) * gap
        return total


def cross_validate(
    counts: Sequence[sp.csr_matrix],
    labels: Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
    progress: bool = False,
    config: ModelConfig = DEFAULT_CONFIG,
    desc: str = "cross-validating",
) -> CrossValidation:
    """Stratified, seeded k-fold cross-validation of one head on hashed ``counts``.

    Hashing is stateless, so it is done once by the caller; TF-IDF and the SVM are
    refitted in every fold, exactly as training does. The folds are reduced to the
    size of the rarest label. Raises :class:`DataError` when fewer than 2 folds
    are possible.
    """
    check_labels(labels)
    label_counts = Counter(labels)
    asked = folds
    folds = effective_folds(labels, folds)
    if folds < 2:
        rare = sorted(label for label, count in label_counts.items() if count < 2)
        raise DataError(
            "cross-validation needs at least two examples of every label; "
            f"one only: {', '.join(map(repr, rare[:10]))}"
        )
    if folds < asked:
        rarest = min(label_counts, key=lambda label: (label_counts[label], label))
        logger.warning(
            "only %d example(s) of %r: %d-fold cross-validation instead of %d",
            label_counts[rarest], rarest, folds, asked,
        )  # fmt: skip
    truth = np.asarray(labels, dtype=str)
    classes = tuple(sorted(label_counts))
    decisions = np.zeros((len(truth), len(classes)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with _progress(progress, total=folds, desc=desc) as bar:
        for train, test in splitter.split(np.zeros(len(truth)), truth):
            head = fit_head([block[train] for block in counts], truth[train], config, seed=seed)
            columns = [classes.index(label) for label in head.classes]
            fold_decisions = head.decisions([block[test] for block in counts])
            # A label absent from a training fold gets no column: make it unlikely.
            missing = [i for i in range(len(classes)) if i not in columns]
            if missing:
                decisions[np.ix_(test, missing)] = fold_decisions.min() - 1.0
            decisions[np.ix_(test, columns)] = fold_decisions
            bar.update()
    temperature = fit_temperature(decisions, list(truth), classes)
    return CrossValidation(classes, truth, decisions, temperature, folds)


def fit_head(
    counts: Sequence[sp.csr_matrix],
    labels: Sequence[str],
    config: ModelConfig,
    *,
    seed: int,
    temperature: float = 1.0,
) -> Head:
    """Fit the idf vectors and the SVM on ``counts`` (one matrix per block) and ``labels``."""
    idf = tuple(fit_idf(block) for block in counts)
    features = sp.hstack(
        [tfidf(block, vector) for block, vector in zip(counts, idf, strict=True)], format="csr"
    )
    svm = LinearSVC(C=config.svm_c, class_weight=config.class_weight, random_state=seed)
    svm.fit(features, np.asarray(labels, dtype=str))
    weights, intercept = np.asarray(svm.coef_), np.asarray(svm.intercept_, dtype=np.float64)
    if weights.shape[0] == 1:
        # Two labels give one decision value d; as two columns (-d/2, d/2) the
        # softmax is the logistic function of d, like any other head.
        weights = np.vstack((-weights / 2.0, weights / 2.0))
        intercept = np.concatenate((-intercept / 2.0, intercept / 2.0))
    columns = np.flatnonzero(np.any(weights != 0.0, axis=0)).astype(np.int32)
    return Head(
        classes=tuple(str(label) for label in svm.classes_),
        idf=idf,
        columns=columns,
        weights=weights[:, columns].astype(np.float32),
        intercept=intercept,
        temperature=float(temperature),
    )


def fit_temperature(
    decisions: np.ndarray[Any, Any], labels: Sequence[str], classes: Sequence[str]
) -> float:
    """The temperature minimising the log loss of ``softmax(decisions / T)`` on ``labels``.

    ``decisions`` must be out-of-fold (cross-validated), or the temperature comes out
    too low and the probabilities overconfident.
    """
    index = {label: position for position, label in enumerate(classes)}
    truth = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))

    def loss(log_temperature: float) -> float:
        probabilities = softmax(decisions / np.exp(log_temperature))
        picked = probabilities[np.arange(len(truth)), truth]
        return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))

    result = minimize_scalar(loss, bounds=_TEMPERATURE_BOUNDS, method="bounded")
    return float(np.exp(result.x))


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """``{"n", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}}}``.

    Macro averages are over the true labels (a prediction of a label the data does
    not have, such as ``unclassified``, counts as an error, not as a class).
    """
    labels = sorted(set(truth))
    precision, recall, f1, support = prfs(truth, predicted, labels=labels, zero_division=0.0)
    return {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_class": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
    }


def _with_floors(evaluation: CrossValidation, texts: Sequence[str]) -> Any:
    """Cross-validated severity after the signal floors, as the product reports it."""
    if not is_default_scale(evaluation.labels):
        return None
    final = [
        cap_severity(
            max_severity(str(estimate), *(signal.floor for signal in find_signals(text))),
            evaluation.labels,
        )
        for estimate, text in zip(evaluation.predicted, texts, strict=True)
    ]
    return metrics([label.lower() for label in evaluation.truth], final)


def _check_counts(labels: Sequence[str], what: str) -> None:
    lonely = sorted(label for label, count in Counter(labels).items() if count < 2)
    if lonely:
        raise DataError(
            f"{what} label(s) with a single example: {', '.join(map(repr, lonely[:10]))}; "
            "every label needs at least two examples (add examples or merge the label)"
        )


def _severity_rows(examples: Sequence[LabelledExample]) -> tuple[list[int], str]:
    """Rows that can train a severity head, and a note for the card."""
    rows = [index for index, example in enumerate(examples) if example.severity]
    if not rows:
        return [], "no severity in the data: severity comes from the signals (default medium)"
    counts = Counter(str(examples[index].severity) for index in rows)
    if len(counts) < 2:
        return [], "one severity value only: severity comes from the signals (default medium)"
    lonely = [label for label, count in counts.items() if count < 2]
    if lonely:
        raise DataError(
            f"severity label(s) with a single example: {', '.join(map(repr, sorted(lonely)))}"
        )
    note = f"severity head trained on {len(rows)} of {len(examples)} examples"
    if not is_default_scale(counts):
        note += "; custom severity labels: signal floors are recorded but not applied"
    return rows, note


def _languages(examples: Sequence[LabelledExample], texts: Sequence[str]) -> list[str]:
    """Languages with at least a small share of the examples (given, else detected)."""
    detected = detect_languages(
        [text for e, text in zip(examples, texts, strict=True) if not e.language]
    )
    unknown = iter(detected)
    found = Counter(example.language or next(unknown)[0] for example in examples)
    floor = max(1, int(_LANGUAGE_SHARE * len(examples)))
    return sorted(str(code) for code, count in found.items() if code and count >= floor)


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "scipy", "skops", "py3langid"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class _Bar:
    """The part of tqdm's interface used here, doing nothing."""

    def update(self, count: int = 1) -> None:
        del count


@contextmanager
def _progress(enabled: bool, *, total: int, desc: str) -> Iterator[Any]:
    if not enabled:
        yield _Bar()
        return
    with tqdm(total=total, desc=desc, unit="step", leave=False) as bar:
        yield bar
