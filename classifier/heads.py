"""One classification head: TF-IDF per feature block, a linear SVM, a softmax temperature.

Why this shape (measured; see docs/performance.md, "## Classifier"):

- Word 1–2-grams carry the topic; character 2–5-grams inside word boundaries carry
  it across inflection (Hungarian and German endings, compounds), typos and
  languages. Together they beat either alone (on our corpus, category macro-F1
  0.76 against 0.69 for words alone).
- Each block gets its own TF-IDF (sublinear tf, smoothed idf, L2 norm); normalised
  together, the many character n-grams would drown the word block.
- A linear SVM (scikit-learn's ``LinearSVC``) with balanced class weights: an
  admin's labels are rarely balanced, and macro-F1 rewards the small classes.
- Probabilities by temperature scaling: the softmax of the SVM's decision values
  divided by one temperature fitted on cross-validated decision values. It keeps
  the SVM's ranking, so it costs no accuracy (one-vs-rest Platt scaling lost 4–8
  points of macro-F1) and it was the best calibrated.

A fitted head is plain arrays (idf vectors, the weights of the features that any
training text had, intercepts, labels, the temperature), so the model file holds
nothing but numpy arrays and builtins, loads in milliseconds, and predicting needs
neither scikit-learn nor SciPy's optimisers. Fitting is in :mod:`classifier.training`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp

from classifier.vectorize import HashedFeatures

__all__ = ["Head", "JointHeads", "ModelConfig", "fit_idf", "softmax", "tfidf"]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Every choice of features and model, recorded in the model card."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    word_bits: int = 18
    char_bits: int = 18
    svm_c: float = 1.0
    class_weight: str | None = "balanced"

    @property
    def features(self) -> HashedFeatures:
        """The hashing this configuration asks for."""
        return HashedFeatures(self.word_ngrams, self.char_ngrams, self.word_bits, self.char_bits)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as JSON values."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Head:
    """A fitted head; :meth:`probabilities` maps hashed counts to class probabilities."""

    classes: tuple[str, ...]
    idf: tuple[np.ndarray[Any, Any], ...]
    """One inverse-document-frequency vector per feature block."""
    columns: np.ndarray[Any, Any]
    """The columns (of all blocks side by side) with a weight; the others are zero."""
    weights: np.ndarray[Any, Any]
    """``len(classes) × len(columns)`` SVM weights (float32)."""
    intercept: np.ndarray[Any, Any]
    temperature: float

    @cached_property
    def _scorer(self) -> JointHeads:
        return JointHeads((self,))

    def decisions(self, counts: Sequence[sp.csr_matrix]) -> np.ndarray[Any, Any]:
        """The SVM's decision values, one column per class."""
        return self._scorer.decisions(counts)[0]

    def probabilities(self, counts: Sequence[sp.csr_matrix]) -> np.ndarray[Any, Any]:
        """Calibrated probabilities, one column per class in :attr:`classes` order."""
        return softmax(self.decisions(counts) / self.temperature)


class JointHeads:
    """Heads over the same hashed counts, scored together: two sparse products per block.

    The decision of head ``h`` on block ``b`` is ``(tf · (idf ∘ W)) / ‖tf ∘ idf‖`` with
    ``tf = 1 + ln count``: the idf goes into the weights, and the squared norm is
    ``tf² · idf²``. So each block needs one product with the idf-scaled weights of
    every head side by side and one with every head's squared idf, instead of a
    TF-IDF matrix per head; the sublinear tf is computed once for all heads.
    """

    def __init__(self, heads: tuple[Head, ...]) -> None:
        self._heads = heads
        self._widths = [len(head.classes) for head in heads]
        self._weights: list[np.ndarray[Any, Any]] = []
        self._square_idf: list[np.ndarray[Any, Any]] = []
        bounds = np.cumsum([0, *(len(vector) for vector in heads[0].idf)])
        blocks = list(pairwise(bounds))
        full = []
        for head in heads:
            if [len(vector) for vector in head.idf] != [len(v) for v in heads[0].idf]:
                raise ValueError("heads over differently sized feature blocks")
            weights = np.zeros((bounds[-1], len(head.classes)), dtype=np.float32)
            weights[head.columns] = head.weights.T
            full.append(weights)
        for index, (start, end) in enumerate(blocks):
            self._weights.append(
                np.hstack(
                    [
                        weights[start:end] * head.idf[index][:, None]
                        for head, weights in zip(heads, full, strict=True)
                    ]
                ).astype(np.float32)
            )
            self._square_idf.append(
                np.column_stack([np.square(head.idf[index]) for head in heads]).astype(np.float32)
            )

    @property
    def heads(self) -> tuple[Head, ...]:
        """The heads, in the order of the results."""
        return self._heads

    def probabilities(self, counts: Sequence[sp.csr_matrix]) -> list[np.ndarray[Any, Any]]:
        """Calibrated probabilities of each head (see :meth:`Head.probabilities`)."""
        return [
            softmax(values / head.temperature)
            for head, values in zip(self._heads, self.decisions(counts), strict=True)
        ]

    def decisions(self, counts: Sequence[sp.csr_matrix]) -> list[np.ndarray[Any, Any]]:
        """Decision values of each head (see :meth:`Head.decisions`)."""
        rows = counts[0].shape[0]
        totals = np.zeros((rows, sum(self._widths)), dtype=np.float64)
        for block, weights, square_idf in zip(counts, self._weights, self._square_idf, strict=True):
            tf = (1.0 + np.log(block.data)).astype(np.float32)
            shape = block.shape
            scores = sp.csr_matrix((tf, block.indices, block.indptr), shape=shape) @ weights
            norms = sp.csr_matrix((tf * tf, block.indices, block.indptr), shape=shape) @ square_idf
            norms = np.sqrt(norms, out=norms)
            norms[norms == 0.0] = 1.0
            totals += scores / np.repeat(norms, self._widths, axis=1)
        result = []
        start = 0
        for head, width in zip(self._heads, self._widths, strict=True):
            result.append(totals[:, start : start + width] + head.intercept)
            start += width
        return result


def fit_idf(counts: sp.csr_matrix) -> np.ndarray[Any, Any]:
    """Smoothed inverse document frequency: ``ln((1 + n) / (1 + df)) + 1``."""
    documents = np.bincount(counts.indices, minlength=counts.shape[1])
    idf: np.ndarray[Any, Any] = np.log((1.0 + counts.shape[0]) / (1.0 + documents)) + 1.0
    return idf.astype(np.float32)


def tfidf(counts: sp.csr_matrix, idf: np.ndarray[Any, Any]) -> sp.csr_matrix:
    """Sublinear tf (``1 + ln tf``) times idf, each row scaled to unit length."""
    data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=counts.shape[0]))
    norms[norms == 0.0] = 1.0
    data /= norms[rows]
    return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)


def softmax(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Row-wise softmax."""
    shifted = values - values.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    result: np.ndarray[Any, Any] = exponentials / exponentials.sum(axis=1, keepdims=True)
    return result
