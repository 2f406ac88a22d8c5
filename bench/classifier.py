"""Benchmark: complaintd's classifier pipeline against a plain baseline, in one run.

On ``../shared/data/support_tickets_multilang.csv`` (text, category, priority) and
on ``../shared/data/negative_control_random_labels.csv`` (labels independent of the
text: an honest pipeline scores chance there), with the same stratified 5-fold
split (seed 0) for both pipelines, it measures the macro-F1 of

- **baseline**: TF-IDF word 1–2-grams + ``LinearSVC`` on the raw text;
- **complaintd**: ``prepare_text`` → hashed word 1–2- and character 2–5-grams →
  TF-IDF per block → balanced ``LinearSVC`` → temperature (the training code
  itself, :func:`classifier.training.cross_validate`);

for the category and for the priority (as the severity head), then trains the
default model on ``training_data/`` and measures its cross-validated metrics, the
training time, the model file size, the load time (in this process and in a fresh
one, imports included) and the batch prediction rate on the shared texts.

``--variants`` also cross-validates the candidate pipelines that were compared to
choose this one, and ``--explore`` the later ideas for closing the quality gap
(docs/performance.md, "## Classifier"). The shared data is only read; no model
trained on it is kept. Usage::

    .venv/bin/python bench/classifier.py [--variants] [--explore] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import (  # noqa: E402
    default_training_files,
    find_signals,
    load_examples,
    load_model,
    prepare_text,
    save_model,
    train_model,
)
from classifier.heads import JointHeads, ModelConfig, fit_idf, tfidf  # noqa: E402
from classifier.taxonomy import cap_severity, max_severity  # noqa: E402
from classifier.training import cross_validate  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEVELOPMENT = "support_tickets_multilang.csv"
NEGATIVE_CONTROL = "negative_control_random_labels.csv"
SEED = 0
FOLDS = 5


def _read(name: str) -> tuple[list[str], dict[str, np.ndarray[Any, Any]]]:
    path = SHARED / name
    if not path.is_file():
        sys.exit(
            f"bench/classifier.py: {path} is missing. The shared evaluation data lives next "
            "to the repository (../shared/data/); it is never copied into the project."
        )
    csv.field_size_limit(16 * 1024 * 1024)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = [row["text"] for row in rows]
    labels = {
        "category": np.asarray([row["category"] for row in rows], dtype=str),
        "priority": np.asarray([row["priority"] for row in rows], dtype=str),
    }
    return texts, labels


def _macro_f1(truth: Sequence[str] | np.ndarray[Any, Any], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro"))


def _folds(labels: np.ndarray[Any, Any]) -> list[tuple[np.ndarray[Any, Any], ...]]:
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    return list(splitter.split(np.zeros(len(labels)), labels))


def baseline(texts: Sequence[str], labels: np.ndarray[Any, Any]) -> float:
    """TF-IDF word 1–2-grams + LinearSVC (defaults), cross-validated macro-F1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    predicted = np.empty(len(labels), dtype=object)
    data = np.asarray(texts, dtype=object)
    for train, test in _folds(labels):
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LinearSVC(random_state=SEED))
        model.fit(list(data[train]), labels[train])
        predicted[test] = model.predict(list(data[test]))
    return _macro_f1(labels, [str(p) for p in predicted])


def complaintd(
    prepared: Sequence[str], counts: list[sp.csr_matrix], labels: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Our pipeline, cross-validated with the training code; with and without floors."""
    result = cross_validate(counts, list(labels), seed=SEED, folds=FOLDS)
    predicted = [str(p) for p in result.predicted]
    scores = {"macro_f1": _macro_f1(labels, predicted)}
    if all(label.lower() in {"low", "medium", "high", "critical"} for label in result.labels):
        floored = [
            cap_severity(max_severity(p, *(s.floor for s in find_signals(t))), result.labels)
            for p, t in zip(predicted, prepared, strict=True)
        ]
        scores["with_floors"] = _macro_f1([label.lower() for label in labels], floored)
    return scores


# -- candidate pipelines (--variants) ------------------------------------------


def _svm_variant(
    blocks: Callable[[Sequence[str]], list[sp.csr_matrix]],
    *,
    balanced: bool = True,
    calibration: str = "temperature",
) -> Callable[[Sequence[str], np.ndarray[Any, Any]], float]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    def run(prepared: Sequence[str], labels: np.ndarray[Any, Any]) -> float:
        counts = blocks(prepared)
        predicted = np.empty(len(labels), dtype=object)
        classes = np.unique(labels)
        for train, test in _folds(labels):
            idf = [fit_idf(block[train]) for block in counts]
            x_train = sp.hstack([tfidf(b[train], i) for b, i in zip(counts, idf, strict=True)])
            x_test = sp.hstack([tfidf(b[test], i) for b, i in zip(counts, idf, strict=True)])
            svm = LinearSVC(class_weight="balanced" if balanced else None, random_state=SEED)
            if calibration == "sigmoid":
                model = CalibratedClassifierCV(svm, method="sigmoid", cv=3, ensemble=False)
                model.fit(x_train.tocsr(), labels[train])
                predicted[test] = model.classes_[model.predict_proba(x_test.tocsr()).argmax(1)]
                continue
            svm.fit(x_train.tocsr(), labels[train])
            # A temperature never changes the best class, so macro-F1 needs none.
            predicted[test] = classes[svm.decision_function(x_test.tocsr()).argmax(1)]
        return _macro_f1(labels, [str(p) for p in predicted])

    return run


def _logistic_variant(prepared: Sequence[str], labels: np.ndarray[Any, Any]) -> float:
    from sklearn.linear_model import LogisticRegression

    counts = ModelConfig().features.transform(prepared)
    predicted = np.empty(len(labels), dtype=object)
    for train, test in _folds(labels):
        idf = [fit_idf(block[train]) for block in counts]
        x_train = sp.hstack([tfidf(b[train], i) for b, i in zip(counts, idf, strict=True)])
        x_test = sp.hstack([tfidf(b[test], i) for b, i in zip(counts, idf, strict=True)])
        model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=300)
        model.fit(x_train.tocsr(), labels[train])
        predicted[test] = model.predict(x_test.tocsr())
    return _macro_f1(labels, [str(p) for p in predicted])


def variants() -> dict[str, Callable[[Sequence[str], np.ndarray[Any, Any]], float]]:
    """The candidates compared when choosing the pipeline, on prepared texts."""
    words = ModelConfig().features
    return {
        "hashed word 1-2 only, balanced SVM": _svm_variant(lambda t: [words.words(t)]),
        "hashed char 2-5 only, balanced SVM": _svm_variant(lambda t: [words.chars(t)]),
        "word 1-2 + char 2-5, unbalanced SVM": _svm_variant(words.transform, balanced=False),
        "word 1-2 + char 2-5, balanced SVM, Platt (sigmoid)": _svm_variant(
            words.transform, calibration="sigmoid"
        ),
        "word 1-2 + char 2-4, balanced SVM": _svm_variant(
            ModelConfig(char_ngrams=(2, 4)).features.transform
        ),
        "word 1-2 + char 2-5, logistic regression (C=10, balanced)": _logistic_variant,
        "word 1-2 + char 2-5, balanced SVM, temperature (chosen)": _svm_variant(words.transform),
    }


# -- ideas tried on 2026-11-22 (--explore) -------------------------------------


def _tfidf_split(
    blocks: Sequence[sp.csr_matrix], train: np.ndarray[Any, Any], test: np.ndarray[Any, Any]
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    idf = [fit_idf(block[train]) for block in blocks]
    x_train = sp.hstack([tfidf(b[train], i) for b, i in zip(blocks, idf, strict=True)])
    x_test = sp.hstack([tfidf(b[test], i) for b, i in zip(blocks, idf, strict=True)])
    return x_train.tocsr(), x_test.tocsr()


Scorer = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]], Any]


def _cross_validated(score: Scorer, labels: np.ndarray[Any, Any]) -> float:
    """Macro-F1 of the argmax of ``score(train, test, labels)`` (columns: sorted labels)."""
    classes = np.unique(labels)
    predicted = np.empty(len(labels), dtype=object)
    for train, test in _folds(labels):
        predicted[test] = classes[np.asarray(score(train, test, labels)).argmax(axis=1)]
    return _macro_f1(list(labels), [str(p) for p in predicted])


def explorations(raw: Sequence[str], labels: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """The general ideas tried to close the quality gap (docs/performance.md), same folds."""
    from sklearn.linear_model import RidgeClassifier, SGDClassifier
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    features = ModelConfig().features
    prepared = [prepare_text("", text) for text in raw]
    # The data's text is "subject, blank line, body" (its README).
    subjects = [prepare_text("", text.partition("\n\n")[0]) for text in raw]
    base = features.transform(prepared)
    with_raw = base + features.transform([text.lower() for text in raw])
    with_subject = base + features.transform(subjects)

    def svm(blocks: Sequence[sp.csr_matrix]) -> Scorer:
        def score(train: Any, test: Any, y: Any) -> Any:
            x_train, x_test = _tfidf_split(blocks, train, test)
            model = LinearSVC(class_weight="balanced", random_state=SEED).fit(x_train, y[train])
            return model.decision_function(x_test)

        return score

    def sgd(train: Any, test: Any, y: Any) -> Any:
        x_train, x_test = _tfidf_split(base, train, test)
        model = SGDClassifier(
            loss="modified_huber", alpha=1e-4, average=True, class_weight="balanced",
            max_iter=50, tol=None, random_state=SEED,
        )  # fmt: skip
        return model.fit(x_train, y[train]).decision_function(x_test)

    def complement_nb(train: Any, test: Any, y: Any) -> Any:
        counts = sp.hstack(base).tocsr()
        model = ComplementNB(alpha=0.1).fit(counts[train], y[train])
        return model.predict_log_proba(counts[test])

    def ridge(train: Any, test: Any, y: Any) -> Any:
        x_train, x_test = _tfidf_split(base, train, test)
        model = RidgeClassifier(alpha=1.0, class_weight="balanced", solver="sparse_cg")
        return model.fit(x_train, y[train]).decision_function(x_test)

    def bagged(train: Any, test: Any, y: Any) -> Any:
        x_train, x_test = _tfidf_split(base, train, test)
        rng = np.random.default_rng(SEED)
        total = 0.0
        for _ in range(7):
            part = rng.choice(len(train), int(0.8 * len(train)), replace=False)
            model = LinearSVC(class_weight="balanced", random_state=SEED)
            total = total + model.fit(x_train[part], y[train][part]).decision_function(x_test)
        return total

    def ordinal(train: Any, test: Any, y: Any) -> Any:
        # Cumulative binary SVMs: P(> low) and P(> medium); columns in sorted label order.
        x_train, x_test = _tfidf_split(base, train, test)
        rank = np.asarray([{"low": 0, "medium": 1, "high": 2}[label] for label in y[train]])
        above = [
            LinearSVC(class_weight="balanced", random_state=SEED)
            .fit(x_train, (rank > level).astype(int))
            .decision_function(x_test)
            for level in (0, 1)
        ]
        low, medium, high = -above[0], np.minimum(above[0], -above[1]), above[1]
        return np.column_stack([high, low, medium])

    candidates: dict[str, tuple[Scorer, tuple[str, ...]]] = {
        "chosen pipeline (reference)": (svm(base), ("category", "priority")),
        "raw text instead of prepared": (
            svm(features.transform([text.lower() for text in raw])),
            ("category", "priority"),
        ),
        "prepared + raw text blocks": (svm(with_raw), ("category", "priority")),
        "prepared + subject word/char blocks": (svm(with_subject), ("category", "priority")),
        "SGD modified_huber, averaged (alpha 1e-4)": (sgd, ("category", "priority")),
        "ComplementNB on word+char counts (alpha 0.1)": (complement_nb, ("category", "priority")),
        "RidgeClassifier (alpha 1, balanced)": (ridge, ("category", "priority")),
        "7 bagged SVMs (80% subsamples)": (bagged, ("category", "priority")),
        "ordinal priority: cumulative binary SVMs": (ordinal, ("priority",)),
    }
    return {
        name: {head: _cross_validated(score, labels[head]) for head in heads}
        for name, (score, heads) in candidates.items()
    }


# -- speed, size, load ---------------------------------------------------------


def _fresh_process_seconds(model_dir: Path) -> tuple[float, float]:
    """In a new interpreter: seconds to load the model (imports included), and then
    to predict the first mail (py3langid's model is decompressed on first use)."""
    code = (
        "import time; t = time.perf_counter(); from pathlib import Path; "
        "from classifier import load_model; "
        f"model = load_model(Path({str(model_dir)!r})); print(time.perf_counter() - t); "
        "t = time.perf_counter(); model.predict('Parcel lost', 'My parcel never arrived.'); "
        "print(time.perf_counter() - t)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    load, first = completed.stdout.strip().splitlines()[-2:]
    return float(load), float(first)


def speed(texts: Sequence[str]) -> dict[str, Any]:
    """Train the default model, save, load, and predict ``texts`` in batches."""
    examples = load_examples(default_training_files())
    started = time.perf_counter()
    trained = train_model(examples, seed=SEED, cv_folds=FOLDS, progress=False)
    training_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        saved = save_model(trained, Path(folder))
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            model = load_model(Path(folder), expected_sha256=saved.sha256)
            loads.append(time.perf_counter() - started)
        fresh = min(
            (_fresh_process_seconds(Path(folder)) for _ in range(3)), key=lambda pair: pair[0]
        )
        items = [("", text) for text in texts]
        model.predict_many(items[:50])  # the language model loads on first use
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            model.predict_many(items)
            rates.append(len(items) / (time.perf_counter() - started))
        prepared = [prepare_text("", text) for text in texts]
        scorer = JointHeads(tuple(h for h in model.heads.values() if h is not None))
        model_rates = []
        for _ in range(3):
            started = time.perf_counter()
            for start in range(0, len(prepared), 256):  # as predict_many does
                scorer.probabilities(model.features.transform(prepared[start : start + 256]))
            model_rates.append(len(items) / (time.perf_counter() - started))
        return {
            "card": trained.card,
            "training_seconds": training_seconds,
            "model_bytes": saved.path.stat().st_size,
            "load_seconds": min(loads),
            "fresh_process_load_seconds": fresh[0],
            "fresh_process_first_prediction_seconds": fresh[1],
            "predict_many_per_second": max(rates),
            "model_only_per_second": max(model_rates),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", action="store_true", help="also run the candidates")
    parser.add_argument(
        "--explore", action="store_true", help="also run the ideas tried on 2026-11-22"
    )
    parser.add_argument(
        "--speed-only", action="store_true", help="only training time, size, loading, speed"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"folds": FOLDS, "seed": SEED, "datasets": {}}
    development_texts: list[str] = []
    for name in () if args.speed_only else (DEVELOPMENT, NEGATIVE_CONTROL):
        texts, labels = _read(name)
        if name == DEVELOPMENT:
            development_texts = texts
        prepared = [prepare_text("", text) for text in texts]
        counts = ModelConfig().features.transform(prepared)
        result: dict[str, Any] = {"n": len(texts)}
        for head, truth in labels.items():
            started = time.perf_counter()
            ours = complaintd(prepared, counts, truth)
            ours_seconds = time.perf_counter() - started
            started = time.perf_counter()
            theirs = baseline(texts, truth)
            result[head] = {
                "classes": len(set(truth)),
                "chance": 1.0 / len(set(truth)),
                "baseline": theirs,
                "baseline_seconds": time.perf_counter() - started,
                "complaintd": ours["macro_f1"],
                "complaintd_with_floors": ours.get("with_floors"),
                "complaintd_seconds": ours_seconds,
            }
            if not args.json:
                print(
                    f"{name} {head}: baseline {theirs:.4f}, complaintd {ours['macro_f1']:.4f}"
                    f" (chance {1.0 / len(set(truth)):.4f})",
                    flush=True,
                )
        if args.explore and name == DEVELOPMENT:
            result["explorations"] = explorations(texts, labels)
        if args.variants and name == DEVELOPMENT:
            result["variants"] = {
                label: {head: run(prepared, truth) for head, truth in labels.items()}
                for label, run in variants().items()
            }
        report["datasets"][name] = result
    if args.variants:
        examples = load_examples(default_training_files())
        prepared = [prepare_text(e.subject, e.body) for e in examples]
        own = {
            "category": np.asarray([e.category for e in examples], dtype=str),
            "severity": np.asarray([e.severity for e in examples], dtype=str),
        }
        report["training_data_variants"] = {
            label: {head: run(prepared, truth) for head, truth in own.items()}
            for label, run in variants().items()
        }
    if args.speed_only:
        development_texts = _read(DEVELOPMENT)[0]
    report["speed"] = speed(development_texts)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    print("\n| data set | head | chance | baseline | complaintd | difference |")
    print("|---|---|---:|---:|---:|---:|")
    for name, result in report["datasets"].items():
        for head in ("category", "priority"):
            row = result[head]
            print(
                f"| {name} | {head} | {row['chance']:.3f} | {row['baseline']:.3f} | "
                f"{row['complaintd']:.3f} | {100 * (row['complaintd'] - row['baseline']):+.1f} pt |"
            )
    for name, result in report["datasets"].items():
        for label, scores in (result.get("explorations") or {}).items():
            print(f"  explored on {name}: {label}: "
                  + ", ".join(f"{h} {v:.4f}" for h, v in scores.items()))  # fmt: skip
    for key in ("datasets", "training_data_variants"):
        tables = (
            {n: r.get("variants") for n, r in report[key].items()}
            if key == "datasets"
            else {"training_data/": report.get(key)}
        )
        for name, found in tables.items():
            if found:
                print(f"\nvariants on {name}:")
                for label, scores in found.items():
                    print(f"  {label}: " + ", ".join(f"{h} {v:.4f}" for h, v in scores.items()))
    speed_report = report["speed"]
    card = speed_report["card"]
    print("\ndefault model on training_data/ (5-fold CV):")
    for head, details in card["heads"].items():
        cv = details["cv"]
        print(f"  {head}: macro-F1 {cv['macro_f1']:.4f}, accuracy {cv['accuracy']:.4f}, "
              f"ECE {cv['ece']:.4f}")  # fmt: skip
        floors = details.get("cv_with_signal_floors")
        if floors:
            print(f"  {head} with signal floors: macro-F1 {floors['macro_f1']:.4f}")
    print(f"training (incl. 5-fold CV): {speed_report['training_seconds']:.1f} s")
    print(f"model file: {speed_report['model_bytes'] / 1e6:.1f} MB")
    first = speed_report["fresh_process_first_prediction_seconds"]
    print(f"load: {speed_report['load_seconds'] * 1000:.0f} ms in process, "
          f"{speed_report['fresh_process_load_seconds']:.2f} s in a fresh process; "
          f"first prediction there {first:.2f} s")  # fmt: skip
    rate = speed_report["predict_many_per_second"]
    model_rate = speed_report["model_only_per_second"]
    print(f"predict_many: {rate:.0f} mails/s; model alone (hash + both heads): {model_rate:.0f}/s")


if __name__ == "__main__":
    sys.exit(main())
