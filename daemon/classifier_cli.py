"""Admin commands for the classifier: train, evaluate, classify, model, tickets relabel.

Thin handlers: they parse, call :mod:`classifier` and :mod:`daemon.model_registry`,
and print. Every expected failure (bad data, a missing or tampered model, an
unknown version) is one line on stderr and a non-zero exit code, no traceback.

Like :mod:`daemon.cli`, handlers import the database layer when they run (hence
the ``noqa: PLC0415``), so the commands that need no database do not pay for it;
:mod:`classifier` loads scikit-learn only when a model is trained or evaluated.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import classifier
from classifier import (
    DEFAULT_CATEGORIES,
    SEVERITIES,
    UNCLASSIFIED,
    ClassifierError,
    DataError,
    LabelledExample,
    ModelLoadError,
    default_training_files,
    effective_folds,
    load_examples,
)
from daemon.parsing import parse_message
from daemon.settings import Settings
from daemon.table import render_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from classifier import ComplaintClassifier, TrainedModel
    from daemon.model_registry import ModelRegistry

__all__ = ["register_classifier_commands"]

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]
_MAX_LABEL = 64


def register_classifier_commands(commands: Any, tickets: Any, add: Any) -> None:
    """Add the classifier's subcommands to the ``complaintd`` parser.

    ``commands`` is the top-level subparsers object, ``tickets`` the subparsers of
    ``complaintd tickets``, and ``add(name, handler, help, parent)`` the helper of
    :mod:`daemon.cli` that creates a subcommand bound to a handler.
    """
    train = add("train", _cmd_train, "train a classifier model and activate it")
    train.add_argument(
        "--data", nargs="+", action="extend", metavar="PATH", type=Path,
        help="CSV or JSONL files (default: the shipped training_data/)",
    )  # fmt: skip
    _add_column_options(train)
    train.add_argument(
        "--include-corrections", action="store_true",
        help="also learn from labels corrected with 'tickets relabel'",
    )  # fmt: skip
    train.add_argument(
        "--out", metavar="DIR", type=Path,
        help="only write the model files to DIR (not registered, not activated)",
    )  # fmt: skip
    train.add_argument("--cv", type=int, default=5, metavar="K", help="folds for the metrics")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    evaluate = add("evaluate", _cmd_evaluate, "score a model, or the training pipeline, on data")
    evaluate.add_argument(
        "--data", nargs="+", action="extend", metavar="PATH", type=Path, required=True,
        help="CSV or JSONL files with labels",
    )  # fmt: skip
    evaluate.add_argument("--model", metavar="VERSION|DIR", help="default: the active model")
    _add_column_options(evaluate)
    evaluate.add_argument(
        "--cv", type=int, metavar="K",
        help="cross-validate the whole training pipeline on the data (K folds, seed 0)",
    )  # fmt: skip
    evaluate.add_argument(
        "--head", choices=("category", "severity"), default="category",
        help="which label to score (default category)",
    )  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    classify = add("classify", _cmd_classify, "classify one mail file")
    classify.add_argument("file", help="an .eml file, or - for standard input")
    classify.add_argument("--model", metavar="VERSION|DIR", help="default: the active model")
    classify.add_argument("--json", action="store_true", help="print JSON")

    model = commands.add_parser("model", help="list, activate and roll back model versions")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    model_list = add("list", _cmd_model_list, "list model versions, newest first", model_commands)
    model_list.add_argument("--json", action="store_true", help="print JSON")
    activate = add("activate", _cmd_model_activate, "make a model version active", model_commands)
    activate.add_argument("version", help="a version from 'complaintd model list'")
    add("rollback", _cmd_model_rollback, "re-activate the previous model version", model_commands)

    relabel = add("relabel", _cmd_relabel, "correct a ticket's category or severity", tickets)
    relabel.add_argument("ref", help="the ticket reference, e.g. CMP-000123")
    which = relabel.add_mutually_exclusive_group(required=True)
    which.add_argument("--category", help="the right category")
    which.add_argument("--severity", help="the right severity")
    relabel.add_argument("--by", help="who corrects it (default: your user name)")
    relabel.add_argument(
        "--new-label", action="store_true",
        help="accept a category the active model does not know (it needs more examples "
        "than one to be learnt)",
    )  # fmt: skip


def _add_column_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text-column", metavar="C",
        help="the column holding the whole mail (default: subject and body columns)",
    )  # fmt: skip
    parser.add_argument(
        "--label-column", metavar="L", default="category",
        help="the column holding the category label (default category)",
    )  # fmt: skip
    parser.add_argument(
        "--severity-column", metavar="S",
        help="the column holding the severity (default: 'severity' when present)",
    )  # fmt: skip


def _clear_errors(handler: Handler) -> Handler:
    """Turn the classifier's expected errors into one line on stderr and exit code 1."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except ClassifierError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return wrapped


# -- train and evaluate ------------------------------------------------------


@_clear_errors
def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    if args.cv < 2:
        print("error: --cv must be at least 2", file=sys.stderr)
        return 2
    from daemon.model_registry import check_writable, model_dir  # noqa: PLC0415

    # Before the training, not after it: an unwritable folder should cost no wait.
    check_writable(args.out if args.out is not None else model_dir(settings))
    examples = _load(args, args.data or default_training_files())
    if args.include_corrections:
        with _database(settings) as sessions:
            corrections = _corrected_examples(sessions)
        print(f"adding {len(corrections)} corrected ticket(s) to {len(examples)} examples")
        examples = [*examples, *corrections]
    trained = classifier.train_model(examples, seed=args.seed, cv_folds=args.cv, progress=True)
    _print_training_report(trained)
    if args.out is not None:
        saved = classifier.save_model(trained, args.out)
        print(f"model {saved.card['version']} written to {args.out} (not registered)")
        return 0
    with _database(settings) as sessions, sessions() as session:
        registry = _registry(session, settings)
        row = registry.store(trained)
        registry.activate(row.version)
        session.commit()
        print(f"model {row.version} stored in {row.path} and activated")
    return 0


@_clear_errors
def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    examples = _load(args, args.data)
    progress = sys.stderr.isatty()
    if args.cv is not None:
        if args.model is not None:
            print("error: give --model or --cv, not both", file=sys.stderr)
            return 2
        result = classifier.evaluate(examples, cv_folds=args.cv, head=args.head, progress=progress)
    else:
        model = _resolve_model(args.model, settings)
        result = classifier.evaluate(examples, model=model, head=args.head)
    if args.json:
        _print_json(result)
        return 0
    if args.cv:
        labels = [e.category if args.head == "category" else str(e.severity) for e in examples]
        folds = effective_folds(labels, args.cv)
        how = f"{folds}-fold cross-validation" + (f" ({args.cv} asked)" if folds < args.cv else "")
    else:
        how = "the model"
    print(f"{args.head}: {result['n']} examples, {how}")
    print(f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}")
    _print_per_class(result["per_class"])
    return 0


def _load(args: argparse.Namespace, paths: Sequence[Path]) -> list[LabelledExample]:
    examples = load_examples(
        list(paths),
        text_column=args.text_column,
        label_column=args.label_column,
        severity_column=args.severity_column or "severity",
    )
    if args.severity_column and not any(example.severity for example in examples):
        raise DataError(f"no values in severity column {args.severity_column!r}")
    return examples


def _print_training_report(trained: TrainedModel) -> None:
    card = trained.card
    print(f"trained on {card['data']['examples']} examples in {card['training_seconds']} s")
    for head, details in card["heads"].items():
        cv = details["cv"]
        print(
            f"{head}: macro-F1 {cv['macro_f1']:.4f}, accuracy {cv['accuracy']:.4f}, "
            f"ECE {cv['ece']:.4f} ({cv['folds']}-fold cross-validation)"
        )
        floors = details.get("cv_with_signal_floors")
        if floors:
            print(
                f"{head} with signal floors: macro-F1 {floors['macro_f1']:.4f}, "
                f"accuracy {floors['accuracy']:.4f}"
            )
        _print_per_class(cv["per_class"])
    if not card["severity_head"]:
        print(f"severity: {card['severity_note']}")


def _print_per_class(per_class: dict[str, dict[str, Any]]) -> None:

    rows = [{"label": label, **scores} for label, scores in per_class.items()]
    print(render_table(rows, ["label", "precision", "recall", "f1", "support"]))


def _corrected_examples(sessions: sessionmaker[Session]) -> list[LabelledExample]:
    """Each corrected ticket as an example: its first customer mail, its latest labels.

    Only what a person said is a label: a ticket whose category alone was
    corrected teaches the category head, not the severity head (its severity is
    the model's own guess, and learning it back would only confirm the model).
    A category is needed for every example, so a ticket corrected in severity
    alone keeps its current category; tickets whose category is still unknown
    (none or ``unclassified``) are left out.
    """
    from sqlalchemy import select  # noqa: PLC0415

    from models import LabelCorrection, Message, Ticket  # noqa: PLC0415

    with sessions() as session:
        corrections = session.scalars(
            select(LabelCorrection).order_by(LabelCorrection.corrected_at, LabelCorrection.id)
        ).all()
        latest: dict[int, dict[str, str]] = {}
        for correction in corrections:
            latest.setdefault(correction.ticket_id, {})[correction.field] = correction.new_value
        examples = []
        for ticket_id, fields in sorted(latest.items()):
            ticket = session.get(Ticket, ticket_id)
            message = session.scalars(
                select(Message)
                .where(Message.ticket_id == ticket_id, Message.direction == "in")
                .order_by(Message.id)
            ).first()
            if ticket is None or message is None:
                continue
            category = fields.get("category", ticket.category or "")
            if not category or category == UNCLASSIFIED:
                continue
            examples.append(
                LabelledExample(
                    subject=message.subject,
                    body=message.text,
                    category=category,
                    severity=fields.get("severity") or None,
                    language=ticket.language,
                )
            )
    return examples


# -- classify ------------------------------------------------------------------


@_clear_errors
def _cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file} ({exc.strerror})", file=sys.stderr)
        return 1
    parsed = parse_message(raw)
    model = _resolve_model(args.model, settings, train_if_missing=True)
    prediction = model.predict(parsed.subject, parsed.text)
    result: dict[str, Any] = {
        "category": prediction.category,
        "category_confidence": round(prediction.category_confidence, 4),
        "severity": prediction.severity,
        "severity_confidence": round(prediction.severity_confidence, 4),
        "language": prediction.language,
        "signals": list(prediction.signals),
        "model_version": prediction.model_version,
    }
    if args.json:
        _print_json(result)
        return 0
    print(f"category: {result['category']} ({result['category_confidence']:.2f})")
    print(f"severity: {result['severity']} ({result['severity_confidence']:.2f})")
    print(f"language: {result['language']}")
    print(f"signals:  {', '.join(result['signals']) or '-'}")
    print(f"model:    {result['model_version']}")
    return 0


def _resolve_model(
    spec: str | None, settings: Settings, *, train_if_missing: bool = False
) -> ComplaintClassifier:
    """A model folder or file, a registered version, or (None) the active model."""
    from daemon.model_registry import ensure_active_model  # noqa: PLC0415

    abstain_below = settings.classifier.abstain_below
    if spec is not None and Path(spec).exists():
        return classifier.load_model(Path(spec), abstain_below=abstain_below)
    with _database(settings) as sessions:
        with sessions() as session:
            registry = _registry(session, settings)
            row = registry.get(spec) if spec is not None else registry.active()
        first_run = train_if_missing and settings.classifier.train_on_first_run
        if row is None and spec is None and first_run:
            row = ensure_active_model(sessions, settings, progress=True)
    if row is None:
        if spec is not None:
            raise ModelLoadError(f"no model version or folder {spec!r}")
        raise ModelLoadError("no active model; train one with: complaintd train")
    return classifier.load_model(
        Path(row.path), expected_sha256=row.sha256, abstain_below=abstain_below
    )


# -- model versions ------------------------------------------------------------


def _cmd_model_list(args: argparse.Namespace, settings: Settings) -> int:
    with _database(settings) as sessions, sessions() as session:
        rows = [_version_view(row) for row in _registry(session, settings).list()]
    if args.json:
        _print_json(rows)
        return 0

    columns = ["active", "version", "created_at", "activated_at", "examples", "category_f1"]
    print(render_table([{**row, "active": "*" if row["active"] else ""} for row in rows], columns))
    return 0


def _cmd_model_activate(args: argparse.Namespace, settings: Settings) -> int:
    with _database(settings) as sessions, sessions() as session:
        row = _registry(session, settings).activate(args.version)
        session.commit()
        print(f"model {row.version} is active")
    return 0


def _cmd_model_rollback(_args: argparse.Namespace, settings: Settings) -> int:
    with _database(settings) as sessions, sessions() as session:
        row = _registry(session, settings).rollback()
        session.commit()
        print(f"rolled back: model {row.version} is active")
    return 0


def _version_view(row: Any) -> dict[str, Any]:
    card = row.card or {}
    heads = card.get("heads", {})
    category_cv = (heads.get("category") or {}).get("cv") or {}
    severity_cv = (heads.get("severity") or {}).get("cv") or {}
    return {
        "version": row.version,
        "active": bool(row.is_active),
        "path": row.path,
        "sha256": row.sha256,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "activated_at": row.activated_at.isoformat() if row.activated_at else None,
        "examples": (card.get("data") or {}).get("examples"),
        "category_f1": category_cv.get("macro_f1"),
        "severity_f1": severity_cv.get("macro_f1"),
    }


# -- tickets relabel -----------------------------------------------------------


def _cmd_relabel(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select  # noqa: PLC0415

    from models import Event, LabelCorrection, Ticket  # noqa: PLC0415

    field = "category" if args.category is not None else "severity"
    value = " ".join(str(args.category if field == "category" else args.severity).split())
    who = args.by or _user_name()
    with _database(settings) as sessions, sessions() as session:
        value, problem = _known_label(value, field, session, settings, new=args.new_label)
        if problem or value == UNCLASSIFIED:
            print(f"error: {problem or 'unclassified is not a label'}", file=sys.stderr)
            return 2
        ticket = session.scalars(select(Ticket).where(Ticket.ref == args.ref.upper())).first()
        if ticket is None:
            print(f"error: no ticket {args.ref}", file=sys.stderr)
            return 1
        old = getattr(ticket, field)
        if old == value:
            print(f"{ticket.ref}: {field} is {value} already")
            return 0
        now = datetime.now(UTC)
        session.add(
            LabelCorrection(
                ticket_id=ticket.id, field=field, old_value=old, new_value=value,
                corrected_by=who, corrected_at=now, model_version=ticket.model_version,
            )
        )  # fmt: skip
        setattr(ticket, field, value)
        # A person's label is certain; the model's confidence no longer applies.
        setattr(ticket, f"{field}_confidence", 1.0)
        ticket.updated_at = now
        session.add(
            Event(
                ticket_id=ticket.id, at=now, kind="relabelled", actor=who,
                data={"field": field, "old": old, "new": value},
            )
        )  # fmt: skip
        session.commit()
        print(f"{ticket.ref}: {field} {old} -> {value} (by {who})")
    return 0


def _known_label(
    value: str, field: str, session: Session, settings: Settings, *, new: bool
) -> tuple[str, str | None]:
    """``value`` spelt as the known label it names (any case), and why it cannot be one.

    Known are the default taxonomy and the active model's labels (a model trained
    on an admin's own label set makes those valid). A category outside them is a
    typo far more often than a new category, so it needs ``new``: one corrected
    ticket alone would stop ``train --include-corrections`` (a label needs two
    examples).
    """
    if not value or len(value) > _MAX_LABEL:
        return value, f"a {field} must be 1 to {_MAX_LABEL} characters"
    # The active model's own spelling first (it may have been trained on "Delivery"):
    # training with corrections needs the labels it already has; then the defaults.
    models: list[str] = []
    active = _registry(session, settings).active()
    if active is not None:
        head = (active.card or {}).get("heads", {}).get(field) or {}
        models = [str(label) for label in head.get("labels") or []]
    defaults = list(SEVERITIES if field == "severity" else DEFAULT_CATEGORIES)
    known = [*models, *(label for label in defaults if label not in models)]
    for labels in (models, defaults):
        if value in labels:
            return value, None
        spelt = {label.lower(): label for label in reversed(labels)}.get(value.lower())
        if spelt is not None:
            return spelt, None
    if field == "category" and new:
        return value, None
    hint = " (or --new-label to add a category)" if field == "category" else ""
    return value, f"unknown {field} {value!r}; one of: {', '.join(sorted(known))}{hint}"


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "admin"


# -- helpers -------------------------------------------------------------------


def _registry(session: Session, settings: Settings) -> ModelRegistry:
    from daemon.model_registry import ModelRegistry, model_dir  # noqa: PLC0415

    return ModelRegistry(session, model_dir(settings))


@contextmanager
def _database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database (migrated first), disposed of afterwards."""
    from models import create_database_engine, session_factory, upgrade_schema  # noqa: PLC0415

    engine = create_database_engine(settings.database_url())
    try:
        upgrade_schema(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
