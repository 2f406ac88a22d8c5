"""Labelled examples: loading them from CSV or JSONL, and finding the shipped corpus."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.errors import DataError

__all__ = [
    "LabelledExample",
    "check_labels",
    "data_sha256",
    "default_training_files",
    "effective_folds",
    "load_examples",
]

logger = logging.getLogger(__name__)

# CSV fields can be whole mails; the csv module's default limit (128 KiB) is too small.
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """One mail with its labels.

    ``category`` is the label the category head learns (whatever the admin's label
    column holds); ``severity`` is None when the data has no severity.
    """

    subject: str
    body: str
    category: str
    severity: str | None = None
    language: str | None = None


def default_training_files() -> list[Path]:
    """The shipped corpus, ``training_data/complaints/*.jsonl``, next to the package.

    Raises :class:`DataError` when it is not there (e.g. an installation without the
    repository's ``training_data/``).
    """
    folder = Path(__file__).resolve().parents[1] / "training_data" / "complaints"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise DataError(f"no training data found in {folder}; pass --data FILE")
    return files


def load_examples(
    paths: Sequence[Path],
    *,
    text_column: str | None = None,
    label_column: str = "category",
    severity_column: str | None = "severity",
    subject_column: str = "subject",
    body_column: str = "body",
    language_column: str | None = "language",
) -> list[LabelledExample]:
    """Read labelled examples from CSV (``.csv``) or JSON Lines (any other suffix) files.

    With ``text_column`` the mail is that one column (subject left empty); otherwise
    it is the ``subject_column`` and ``body_column`` columns. ``severity_column`` and
    ``language_column`` are optional: when no file has them, examples carry None.
    Rows with an empty text or label are skipped (and counted in a warning).

    Raises :class:`DataError` for a missing or unreadable file, a missing column, a
    file without examples, or data with fewer than two distinct labels.
    """
    if not paths:
        raise DataError("no data files given")
    examples: list[LabelledExample] = []
    for path in paths:
        rows = list(_read_rows(path))
        if not rows:
            raise DataError(f"{path}: no examples (the file is empty)")
        columns = set().union(*(row.keys() for row in rows))
        wanted = [text_column] if text_column else [subject_column, body_column]
        missing = [name for name in [*wanted, label_column] if name not in columns]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(map(repr, missing))}"
                f" (found: {', '.join(sorted(columns)) or 'none'})"
            )
        before = len(examples)
        skipped = 0
        for row in rows:
            example = _example(row, text_column, label_column, severity_column, subject_column,
                               body_column, language_column)  # fmt: skip
            if example is None:
                skipped += 1
            else:
                examples.append(example)
        if skipped:
            logger.warning("%s: skipped %d row(s) with an empty text or label", path, skipped)
        if len(examples) == before:
            raise DataError(f"{path}: no usable examples (every row lacks a text or a label)")
    # Two labels or more are checked where they are needed (training,
    # cross-validation): scoring a model on one category's file is fine.
    return examples


def effective_folds(labels: Sequence[str], folds: int) -> int:
    """The folds stratified cross-validation can make: no more than the rarest label's count."""
    counts = Counter(labels)
    return min(folds, *counts.values()) if counts else 0


def check_labels(labels: Sequence[str], what: str = "the labels") -> None:
    """Raise :class:`DataError` unless ``labels`` holds at least two distinct values."""
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise DataError(
            f"{what}: all {len(labels)} examples have the label {only!r}; "
            "a classifier needs at least two different labels"
        )


def data_sha256(examples: Sequence[LabelledExample]) -> str:
    """A fingerprint of the examples in order (texts and labels), for the model card."""
    digest = hashlib.sha256()
    for example in examples:
        record = [example.subject, example.body, example.category, example.severity]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _example(
    row: dict[str, Any],
    text_column: str | None,
    label_column: str,
    severity_column: str | None,
    subject_column: str,
    body_column: str,
    language_column: str | None,
) -> LabelledExample | None:
    if text_column:
        subject, body = "", _text(row.get(text_column))
    else:
        subject, body = _text(row.get(subject_column)), _text(row.get(body_column))
    label = _text(row.get(label_column)).strip()
    if not (subject.strip() or body.strip()) or not label:
        return None
    severity = _text(row.get(severity_column)).strip() if severity_column else ""
    language = _text(row.get(language_column)).strip() if language_column else ""
    return LabelledExample(subject, body, label, severity or None, language or None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".csv":
            yield from _read_csv(path)
        else:
            yield from _read_jsonl(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a data file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _delimiter(header: str) -> str:
    """The header line's delimiter: a comma, or the semicolon (Excel in many locales) or tab."""
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] > counts[","] else ","


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        delimiter = _delimiter(handle.readline())
        handle.seek(0)  # the utf-8-sig decoder starts afresh and skips a BOM again
        try:
            for row in csv.DictReader(handle, delimiter=delimiter):
                yield {key: value for key, value in row.items() if key is not None}
        except csv.Error as exc:
            raise DataError(f"{path}: not valid CSV ({exc})") from None


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path} line {number}: expected a JSON object")
            yield row
