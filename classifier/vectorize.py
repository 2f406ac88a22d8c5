"""Hashed word and character n-gram counts, computed for a whole batch at once with numpy.

scikit-learn's ``HashingVectorizer`` builds every n-gram as a Python string, which
costs about a millisecond per mail for character 2–5-grams. Here each batch is one
array of code points; n-grams are hashed with a polynomial prefix hash (arithmetic
modulo 2**64, which numpy's unsigned integers do by wrapping), so the cost is a few
array operations per batch. The hashing is fixed by :data:`FEATURES_KIND`: a model
records it, and a model hashed differently is refused on load.

- Word n-grams: tokens of two or more word characters (scikit-learn's default
  token pattern), and runs of consecutive tokens up to the configured length.
- Character n-grams inside word boundaries, each word padded with a space (like
  ``analyzer="char_wb"``): they match across inflections, compounds and typos.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["FEATURES_KIND", "HashedFeatures"]

FEATURES_KIND = "complaintd-hash-v1"

# Runs of two or more word characters: the same tokens as scikit-learn's default
# pattern \b\w\w+\b (a run is always maximal), but without the leading \b the
# regex engine can skip ahead to word characters, which is several times faster.
_TOKEN_RE = re.compile(r"\w\w+")
_BASE = 0x100000001B3  # odd, hence invertible modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 2**64)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the high bits are well mixed
_SALT = 0xD6E8FEB86659FD93
_SPACE = 32
_SEPARATOR = 0  # between documents; no n-gram may contain it
_CHUNK = 256


@dataclass(frozen=True, slots=True)
class HashedFeatures:
    """The hashing configuration; :meth:`transform` turns prepared texts into counts."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    word_bits: int = 18
    char_bits: int = 18

    def __post_init__(self) -> None:
        for low, high in (self.word_ngrams, self.char_ngrams):
            if not 1 <= low <= high:
                raise ValueError("n-gram ranges must satisfy 1 <= low <= high")
        if not (8 <= self.word_bits <= 26 and 8 <= self.char_bits <= 26):
            raise ValueError("feature bits must be between 8 and 26")

    def as_dict(self) -> dict[str, Any]:
        """The configuration as JSON values, with :data:`FEATURES_KIND`."""
        return {
            "kind": FEATURES_KIND,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "word_bits": self.word_bits,
            "char_bits": self.char_bits,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> HashedFeatures:
        """The inverse of :meth:`as_dict`; ValueError for another hashing scheme."""
        if value.get("kind") != FEATURES_KIND:
            raise ValueError(f"features of kind {value.get('kind')!r}, not {FEATURES_KIND!r}")
        word, char = value["word_ngrams"], value["char_ngrams"]
        return cls(
            word_ngrams=(int(word[0]), int(word[1])),
            char_ngrams=(int(char[0]), int(char[1])),
            word_bits=int(value["word_bits"]),
            char_bits=int(value["char_bits"]),
        )

    def transform(self, texts: Sequence[str]) -> list[sp.csr_matrix]:
        """``[word counts, character counts]``, one row per text (float64 CSR)."""
        if len(texts) <= _CHUNK:
            return [self.words(texts), self.chars(texts)]
        # In chunks: the arrays stay in cache and memory stays bounded for big batches.
        chunks = [texts[start : start + _CHUNK] for start in range(0, len(texts), _CHUNK)]
        return [
            sp.vstack([self.words(chunk) for chunk in chunks], format="csr"),
            sp.vstack([self.chars(chunk) for chunk in chunks], format="csr"),
        ]

    def words(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Counts of hashed word n-grams."""
        joined = [" ".join(_TOKEN_RE.findall(text)) for text in texts]
        codes, documents = _encode(joined)
        low, high = self.word_ngrams
        boundary = (codes == _SPACE) | (codes == _SEPARATOR)
        # Word k spans [starts[k], ends[k]); words of different documents never join.
        starts = np.flatnonzero(~boundary & np.concatenate(([True], boundary[:-1])))
        ends = np.flatnonzero(~boundary & np.concatenate((boundary[1:], [True]))) + 1
        prefix, powers = _prefix_sums(codes)
        keys: list[np.ndarray[Any, Any]] = []
        for n in range(low, high + 1):
            if len(starts) < n:
                break
            first, last = starts[: len(starts) - n + 1], ends[n - 1 :]
            # n words in a row belong to one document when no separator lies between.
            same = documents[first] == documents[last - 1]
            first, last = first[same], last[same]
            hashes = powers[last - 1] * (prefix[last] - prefix[first])
            keys.append(_keys(documents[first], hashes, n, self.word_bits, len(texts)))
        return _counts(keys, len(texts), self.word_bits)

    def chars(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Counts of hashed character n-grams within words (each padded with spaces)."""
        codes, documents = _encode([f" {text} " for text in texts])
        low, high = self.char_ngrams
        size = len(codes)
        is_space = codes == _SPACE
        is_separator = codes == _SEPARATOR
        # For each position, the distance to the next space or separator after it: a
        # window of n characters starting at i stays inside one padded word when that
        # distance is at least n - 1 (a space may end the window, a separator not).
        # ``longest[i]`` is the longest such window (0 on a separator).
        positions = np.arange(size)
        at_or_after = np.where(is_space | is_separator, positions, size)
        at_or_after = np.minimum.accumulate(at_or_after[::-1])[::-1]
        next_boundary = np.append(at_or_after[1:], size)
        reach = next_boundary - positions
        ends_on_separator = np.append(is_separator, False)[next_boundary]
        longest = np.where(is_separator, 0, np.where(ends_on_separator, reach, reach + 1))
        hashes = codes.copy()
        keys: list[np.ndarray[Any, Any]] = []
        for n in range(1, high + 1):
            if n > 1:
                # Rolling polynomial hash: the n-gram at i from the (n-1)-gram at i.
                hashes = hashes[:-1] * np.uint64(_BASE) + codes[n - 1 :]
            if n < low:
                continue
            count = size - n + 1
            if count <= 0:
                break
            keep = longest[:count] >= n
            if n == 1:
                keep &= ~is_space[:count]
            elif n == 2:  # two spaces only arise from an empty text
                keep &= ~(is_space[:count] & is_space[1 : count + 1])
            first = np.flatnonzero(keep)
            keys.append(_keys(documents[first], hashes[first], n + 100, self.char_bits, len(texts)))
        return _counts(keys, len(texts), self.char_bits)


def _encode(texts: Sequence[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Code points of the texts joined by separators, and each position's document."""
    joined = "\x00".join(texts)
    if not joined:
        # One empty text: a lone separator, so the arrays are never empty.
        joined = "\x00"
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(text) + 1 for text in texts), dtype=np.int64, count=len(texts))
    documents = np.repeat(np.arange(len(texts)), lengths)[: len(codes)]
    return codes, documents


def _prefix_sums(
    codes: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``prefix[i] = sum(codes[k] * BASE**-k for k < i)`` and ``powers[i] = BASE**i``.

    The hash of ``codes[a:b]`` is then ``powers[b-1] * (prefix[b] - prefix[a])``, i.e.
    ``sum(codes[k] * BASE**(b-1-k))``, all modulo 2**64.
    """
    size = len(codes) + 1
    powers, inverse = _powers(size)
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(codes * inverse[: size - 1])))
    return prefix, powers[:size]


_POWERS: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] = (
    np.ones(1, dtype=np.uint64),
    np.ones(1, dtype=np.uint64),
)


def _powers(size: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``BASE**i`` and ``BASE**-i`` for ``i < size`` (at least), kept between calls:
    every batch needs the same powers. Grown by replacing the tuple, so a thread
    never sees half of it."""
    global _POWERS  # noqa: PLW0603
    known = _POWERS
    if len(known[0]) >= size:
        return known
    size = max(size, 2 * len(known[0]))
    powers = np.cumprod(np.full(size, _BASE, dtype=np.uint64))
    inverse = np.cumprod(np.full(size, _BASE_INVERSE, dtype=np.uint64))
    one = np.ones(1, dtype=np.uint64)
    _POWERS = (np.concatenate((one, powers[:-1])), np.concatenate((one, inverse[:-1])))
    return _POWERS


def _keys(
    documents: np.ndarray[Any, Any], hashes: np.ndarray[Any, Any], salt: int, bits: int, rows: int
) -> np.ndarray[Any, Any]:
    """``document << bits | bucket`` for each hash: the bucket is the top ``bits`` bits
    of the salted hash after a multiplicative mix (Fibonacci hashing)."""
    mixed = hashes ^ np.uint64((_SALT * salt) % 2**64)
    mixed *= _MIX
    mixed >>= np.uint64(64 - bits)
    # 32-bit keys when they fit (a chunk of 256 texts and 2**18 buckets): half the
    # memory traffic, and numpy sorts them twice as fast.
    dtype = np.dtype(np.uint32) if (rows << bits) <= 2**32 else np.dtype(np.uint64)
    key: np.ndarray[Any, Any] = documents.astype(dtype)
    key <<= dtype.type(bits)
    key |= mixed.astype(dtype)
    return key


def _counts(keys: list[np.ndarray[Any, Any]], n_rows: int, bits: int) -> sp.csr_matrix:
    """Count repeated ``row << bits | column`` keys into a CSR matrix with sorted indices."""
    merged = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    if not len(merged):
        return sp.csr_matrix((n_rows, 2**bits), dtype=np.float64)
    # One sort (numpy's is vectorised) gives the rows in order, the columns sorted
    # within them and equal pairs side by side, ready to count.
    merged.sort()
    first = np.flatnonzero(np.concatenate(([True], merged[1:] != merged[:-1])))
    unique = merged[first]
    counts = np.diff(np.append(first, len(merged))).astype(np.float64)
    row_of = (unique >> unique.dtype.type(bits)).astype(np.intp)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(row_of, minlength=n_rows))))
    indices = (unique & unique.dtype.type((1 << bits) - 1)).astype(np.int32)
    matrix = sp.csr_matrix((counts, indices, indptr), shape=(n_rows, 2**bits))
    matrix.has_sorted_indices = True
    return matrix
