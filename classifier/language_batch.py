"""py3langid's classifier for a whole batch at once, with numpy (see :mod:`classifier.language`).

py3langid's own ``classify`` walks a text byte by byte in a Python loop (about 70 µs
for our 100-character sample). Here py3langid's own model arrays do the same for a
whole batch: the byte-level automaton advances every text one byte per step, the
n-gram features it emits are counted per text in one sparse matrix, and one product
gives the naive Bayes scores, normalised as py3langid does with ``norm_probs=True``
(softmax of the scores divided by the square root of the byte length, script aliases
merged). The results equal ``classify``'s up to float rounding (tests compare them).

Imported on first use by :mod:`classifier.language`, so importing the package does
not import numpy and SciPy.
"""

from __future__ import annotations

import unicodedata
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["classify_batch"]

# Texts run through the automaton together: bounds the temporary arrays.
_CHUNK = 2048


@dataclass(frozen=True, slots=True)
class _Model:
    """py3langid's model as arrays: the byte automaton and the naive Bayes tables."""

    nextmove: np.ndarray[Any, Any]
    """Next state for ``row_base[state] + byte``."""
    row_base: np.ndarray[Any, Any]
    output: np.ndarray[Any, Any]
    """The feature a state emits, or -1."""
    log_probabilities: np.ndarray[Any, Any]
    """``features × languages`` (float32)."""
    priors: np.ndarray[Any, Any]
    classes: tuple[str, ...]
    aliases: tuple[tuple[int, int], ...]
    """(first, duplicate) columns of a language listed twice (script variants)."""


@cache
def _model(identifier: Any) -> _Model | None:
    """The arrays of py3langid's model; None for a release that stores it otherwise
    (before 0.4: no shared automaton rows, several features per state), whose
    ``classify`` is then called text by text."""
    if not (hasattr(identifier, "tk_row") and isinstance(identifier.tk_nextmove, array)):
        return None
    classes = tuple(str(code) for code in identifier.nb_classes)
    first: dict[str, int] = {}
    aliases = []
    for column, code in enumerate(classes):
        if code in first:
            aliases.append((first[code], column))
        else:
            first[code] = column
    return _Model(
        # A view of py3langid's own array (uint16 or uint32): 10 million entries.
        nextmove=np.frombuffer(identifier.tk_nextmove, dtype=identifier.tk_nextmove.typecode),
        row_base=np.asarray(identifier.tk_row, dtype=np.int64) << 8,
        output=np.asarray(identifier.tk_output, dtype=np.int64),
        log_probabilities=np.asarray(identifier.nb_ptc, dtype=np.float32),
        priors=np.asarray(identifier.nb_pc, dtype=np.float32),
        classes=classes,
        aliases=tuple(aliases),
    )


def classify_batch(texts: Sequence[str], identifier: Any) -> list[tuple[str, float]] | None:
    """``(code, probability)`` for each text, as py3langid's ``identifier.classify``
    gives them (``norm_probs=True``); None when this py3langid stores its model otherwise."""
    model = _model(identifier)
    if model is None:
        return None
    results: list[tuple[str, float]] = []
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start : start + _CHUNK]
        probabilities = _probabilities(model, chunk)
        best = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(chunk)), best].tolist()
        results.extend((model.classes[column], confidence[row])
                       for row, column in enumerate(best.tolist()))  # fmt: skip
    return results


def _encode(text: str) -> bytes:
    """The bytes py3langid scores for a string (its ``_encode``)."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _probabilities(model: _Model, texts: Sequence[str]) -> np.ndarray[Any, Any]:
    """``texts × languages`` probabilities."""
    samples = [_encode(text) for text in texts]
    lengths = np.fromiter((len(sample) for sample in samples), dtype=np.int64, count=len(samples))
    width = int(lengths.max())
    padded = np.zeros((len(samples), width), dtype=np.int64)
    buffer = np.frombuffer(b"".join(samples), dtype=np.uint8)
    padded[np.arange(width) < lengths[:, None]] = buffer
    # The automaton, one byte of every text per step; steps past a text's end are
    # computed but their features are dropped.
    states = np.zeros(len(samples), dtype=np.int64)
    emitted = np.empty((width, len(samples)), dtype=np.int64)
    for step in range(width):
        states = model.nextmove[model.row_base[states] + padded[:, step]]
        emitted[step] = model.output[states]
    emitted[np.arange(width)[:, None] >= lengths[None, :]] = -1
    step_of, text_of = np.nonzero(emitted >= 0)
    # (text, feature) counts as a sparse matrix (repeated pairs are summed); one
    # product gives every text's naive Bayes score, from log1p of the counts as
    # py3langid weighs them.
    counts = sp.csr_matrix(
        (np.ones(len(step_of), dtype=np.float32), (text_of, emitted[step_of, text_of])),
        shape=(len(samples), len(model.log_probabilities)),
    )
    counts.sum_duplicates()
    np.log1p(counts.data, out=counts.data)
    scores = np.asarray(counts @ model.log_probabilities, dtype=np.float32)
    scores[np.diff(counts.indptr) > 0] += model.priors
    # No feature at all: scores stay 0, a uniform distribution (as in py3langid).
    scores *= (1.0 / np.sqrt(np.maximum(lengths, 1))).astype(np.float32)[:, None]
    np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    for first, duplicate in model.aliases:
        scores[:, first] += scores[:, duplicate]
        scores[:, duplicate] = 0.0
    return scores
