"""The classifier's admin commands, run through ``daemon.cli.main`` on a real SQLite database."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from classifier import default_training_files, load_examples
from daemon.cli import main
from models import (
    Event,
    LabelCorrection,
    Message,
    Ticket,
    create_database_engine,
    session_factory,
    upgrade_schema,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO_MAIL = sorted((ROOT / "daemon" / "demo_mail").glob("*.eml"))
PREDICTION_KEYS = {
    "category", "category_confidence", "severity", "severity_confidence",
    "language", "signals", "model_version",
}  # fmt: skip
METRIC_KEYS = {"n", "accuracy", "macro_f1", "per_class"}


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 4th example of training_data/ as JSONL: trains in a second or two."""
    path = tmp_path_factory.mktemp("data") / "subset.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for example in load_examples(default_training_files())[::4]:
            record = {
                "subject": example.subject, "body": example.body,
                "category": example.category, "severity": example.severity,
            }  # fmt: skip
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "cli.db"}"\n'
        f'[classifier]\nmodel_dir = "models"\ntrain_on_first_run = false\n',
        encoding="utf-8",
    )
    return path


def _run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def _json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> object:
    capsys.readouterr()
    assert _run(config, *args) == 0
    return json.loads(capsys.readouterr().out)


def _train(config: Path, subset: Path, *extra: str) -> str:
    assert _run(config, "train", "--data", str(subset), "--cv", "2", *extra) == 0
    return ""


def _versions(capsys: pytest.CaptureFixture[str], config: Path) -> list[dict[str, object]]:
    result = _json(capsys, config, "model", "list", "--json")
    assert isinstance(result, list)
    return result


def test_train_out_writes_files_and_registers_nothing(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported"
    _train(config, subset, "--out", str(out))
    printed = capsys.readouterr().out
    assert "category: macro-F1" in printed and "(not registered)" in printed
    assert {p.name for p in out.iterdir()} == {
        "model.skops", "card.json", "confusion_category.png", "confusion_severity.png",
    }  # fmt: skip
    assert _versions(capsys, config) == []
    result = _json(capsys, config, "classify", str(DEMO_MAIL[0]), "--model", str(out), "--json")
    assert isinstance(result, dict) and set(result) == PREDICTION_KEYS


def test_train_registers_and_activates_then_rollback_and_activate(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _train(config, subset)
    first = _versions(capsys, config)
    assert len(first) == 1 and first[0]["active"] is True
    assert Path(str(first[0]["path"])).parent == tmp_path / "models"
    _train(config, subset, "--seed", "1")
    _train(config, subset, "--seed", "2")
    versions = [str(v["version"]) for v in reversed(_versions(capsys, config))]
    assert len(versions) == 3  # oldest first from here on

    def active() -> list[str]:
        return [str(v["version"]) for v in _versions(capsys, config) if v["active"]]

    assert active() == [versions[2]]  # training activates the new model
    assert _run(config, "model", "rollback") == 0
    assert active() == [versions[1]]
    assert _run(config, "model", "rollback") == 0  # further back in time
    assert active() == [versions[0]]
    capsys.readouterr()
    assert _run(config, "model", "rollback") == 1  # nothing older to go back to
    assert capsys.readouterr().err.strip().startswith("error: no previously active")
    assert _run(config, "model", "activate", versions[2]) == 0
    assert active() == [versions[2]]
    assert _run(config, "model", "rollback") == 0
    assert active() == [versions[0]]  # the version active before the activation
    assert _run(config, "model", "activate", "no-such-version") == 1


def test_a_version_whose_files_are_gone_or_changed_is_not_activated(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _train(config, subset)
    _train(config, subset, "--seed", "1")
    old, new = (str(v["version"]) for v in reversed(_versions(capsys, config)))
    folder = tmp_path / "models" / old
    skops_file = folder / "model.skops"
    data = bytearray(skops_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    skops_file.write_bytes(bytes(data))
    capsys.readouterr()
    assert _run(config, "model", "activate", old) == 1
    assert "cannot be activated" in capsys.readouterr().err
    assert _run(config, "model", "rollback") == 1  # the only older version is the broken one
    folder.rename(tmp_path / "moved-away")
    assert _run(config, "model", "activate", old) == 1
    assert [v["version"] for v in _versions(capsys, config) if v["active"]] == [new]


def test_evaluate_scores_one_category_and_says_how_many_folds_it_used(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _train(config, subset)
    # The shipped corpus is one file per category: a model can be scored on one.
    billing = ROOT / "training_data" / "complaints" / "billing.jsonl"
    scored = _json(capsys, config, "evaluate", "--data", str(billing), "--json")
    assert isinstance(scored, dict) and list(scored["per_class"]) != []
    few = tmp_path / "few.csv"
    rows = [f"text {label} {n} about {label} things,{label}" for label in "abcd" for n in range(3)]
    few.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    capsys.readouterr()
    args = ("evaluate", "--data", str(few), "--text-column", "text", "--label-column", "label")
    assert _run(config, *args, "--cv", "5") == 0
    assert "3-fold cross-validation (5 asked)" in capsys.readouterr().out


def test_an_unwritable_model_folder_is_a_clear_error_before_training(
    config: Path,
    subset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x", encoding="utf-8")
    capsys.readouterr()
    assert _run(config, "train", "--data", str(subset), "--out", str(a_file / "sub")) == 1
    captured = capsys.readouterr()
    assert "cannot write models to" in captured.err and "Traceback" not in captured.err
    assert "cross-validat" not in captured.out  # refused before any training
    broken = tmp_path / "broken.toml"
    broken.write_text(
        config.read_text(encoding="utf-8").replace('"models"', f'"{a_file / "models"}"'),
        encoding="utf-8",
    )
    monkeypatch.setenv("COMPLAINTD_SECRET", "a-test-secret-of-enough-length-0123456789")
    assert main(["--config", str(broken), "check-config"]) != 0
    assert "classifier.model_dir: " in capsys.readouterr().out


def test_evaluate_json_with_and_without_cv(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _train(config, subset)
    scored = _json(capsys, config, "evaluate", "--data", str(subset), "--json")
    assert isinstance(scored, dict) and set(scored) == METRIC_KEYS
    severity = _json(
        capsys, config, "evaluate", "--data", str(subset), "--head", "severity", "--json"
    )
    assert isinstance(severity, dict) and set(severity["per_class"]) == {
        "low",
        "medium",
        "high",
        "critical",
    }

    # Any label set, from a CSV with one text column: cross-validated from scratch.
    custom = tmp_path / "custom.csv"
    with custom.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "queue"])
        for example in load_examples([subset]):
            if example.category in {"billing", "delivery", "technical"}:
                writer.writerow([f"{example.subject}\n\n{example.body}", example.category[:4]])
    crossed = _json(
        capsys, config, "evaluate", "--data", str(custom), "--text-column", "text",
        "--label-column", "queue", "--cv", "3", "--json",
    )  # fmt: skip
    assert isinstance(crossed, dict) and set(crossed) == METRIC_KEYS
    assert set(crossed["per_class"]) == {"bill", "deli", "tech"}
    for scores in crossed["per_class"].values():
        assert set(scores) == {"precision", "recall", "f1", "support"}


def test_classify_json_on_every_demo_mail(
    config: Path, subset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _train(config, subset)
    version = _versions(capsys, config)[0]["version"]
    for mail in DEMO_MAIL:
        result = _json(capsys, config, "classify", str(mail), "--json")
        assert isinstance(result, dict) and set(result) == PREDICTION_KEYS, mail.name
        assert result["model_version"] == version
        assert result["language"] in {"en", "de", "hu"}
        assert 0.0 <= result["category_confidence"] <= 1.0
        assert result["severity"] in {"low", "medium", "high", "critical"}
        assert isinstance(result["signals"], list)


def _add_ticket(config_dir: Path) -> None:
    engine = create_database_engine(f"sqlite:///{config_dir / 'cli.db'}")
    upgrade_schema(engine)
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    with session_factory(engine)() as session:
        ticket = Ticket(
            ref="CMP-000001", customer_email="anna@example.com", subject="Parcel",
            category="billing", severity="low", model_version="m1",
            created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(ticket)
        session.flush()
        session.add(
            Message(
                ticket_id=ticket.id, direction="in", kind="customer",
                message_id="<p1@example.com>", dedup_key="<p1@example.com>", fingerprint="f",
                subject="Parcel never came", text="My parcel never came, tracking says delivered.",
                received_at=now,
            )
        )  # fmt: skip
        session.commit()
    engine.dispose()


def test_relabel_records_a_correction_and_training_learns_from_it(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_ticket(tmp_path)
    assert (
        _run(config, "tickets", "relabel", "cmp-000001", "--category", "delivery", "--by", "alice")
        == 0
    )
    assert _run(config, "tickets", "relabel", "CMP-000001", "--severity", "HIGH") == 0
    capsys.readouterr()
    assert _run(config, "tickets", "relabel", "CMP-000001", "--severity", "urgent!") == 2
    assert "unknown severity" in capsys.readouterr().err
    # A typo is refused (one example of a label would stop training with corrections);
    # a case variant is the known label; a new category must be asked for.
    assert _run(config, "tickets", "relabel", "CMP-000001", "--category", "Delivry") == 2
    assert "--new-label" in capsys.readouterr().err
    assert _run(config, "tickets", "relabel", "CMP-000001", "--category", "Delivery") == 0
    assert "is delivery already" in capsys.readouterr().out
    assert _run(config, "tickets", "relabel", "CMP-404", "--category", "delivery") == 1

    engine = create_database_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with session_factory(engine)() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.category, ticket.severity) == ("delivery", "high")
        corrections = session.scalars(select(LabelCorrection).order_by(LabelCorrection.id)).all()
        assert [(c.field, c.old_value, c.new_value) for c in corrections] == [
            ("category", "billing", "delivery"), ("severity", "low", "high"),
        ]  # fmt: skip
        assert corrections[0].corrected_by == "alice" and corrections[0].model_version == "m1"
        assert corrections[1].corrected_by  # the OS user by default
        assert corrections[0].corrected_at.tzinfo is not None
        kinds = session.scalars(select(Event.kind).where(Event.ticket_id == ticket.id)).all()
        assert kinds.count("relabelled") == 2
    engine.dispose()

    capsys.readouterr()
    _train(config, subset, "--include-corrections")
    assert "adding 1 corrected ticket(s)" in capsys.readouterr().out
    card = _versions(capsys, config)[0]
    assert card["examples"] == len(load_examples([subset])) + 1


def test_a_category_correction_teaches_the_category_head_only(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_ticket(tmp_path)
    assert _run(config, "tickets", "relabel", "CMP-000001", "--category", "delivery") == 0
    _train(config, subset, "--include-corrections")
    [version] = _versions(capsys, config)
    card = json.loads((Path(str(version["path"])) / "card.json").read_text(encoding="utf-8"))
    counts = {head: sum(card["heads"][head]["label_counts"].values()) for head in card["heads"]}
    base = len(load_examples([subset]))
    # The ticket's severity is the model's own guess: not learnt back as a label.
    assert counts == {"category": base + 1, "severity": base}


def test_relabel_keeps_the_active_models_own_spelling(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "own.csv"
    rows = [f'"Parcel {n} never arrived, tracking is stuck",Delivery' for n in range(6)]
    rows += [f'"Invoice {n} charged twice, refund please",Billing' for n in range(6)]
    own.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    args = ("--data", str(own), "--text-column", "text", "--label-column", "label")
    assert _run(config, "train", *args, "--cv", "2") == 0
    _add_ticket(tmp_path)
    capsys.readouterr()
    assert _run(config, "tickets", "relabel", "CMP-000001", "--category", "delivery") == 0
    assert "-> Delivery" in capsys.readouterr().out


def test_bad_input_gives_one_line_errors(
    config: Path, subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\nhello there,a\nsecond one,a\n", encoding="utf-8")
    missing = tmp_path / "missing.csv"
    missing.write_text("foo,bar\n1,2\n", encoding="utf-8")
    empty_mail = tmp_path / "empty.eml"
    empty_mail.write_bytes(b"From: a@example.com\r\nSubject: \r\n\r\n")
    cases = [
        ["train", "--data", str(one_class), "--text-column", "text", "--label-column", "label"],
        ["train", "--data", str(missing)],
        ["train", "--data", str(tmp_path / "absent.jsonl")],
        ["evaluate", "--data", str(subset), "--json"],  # no model yet
        ["classify", str(DEMO_MAIL[0]), "--json"],  # no model yet
    ]
    for args in cases:
        capsys.readouterr()
        assert _run(config, *args) == 1, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err

    _train(config, subset)
    # The empty mail is a defined fallback, not an error.
    result = _json(capsys, config, "classify", str(empty_mail), "--json")
    assert isinstance(result, dict)
    assert (result["category"], result["language"]) == ("unclassified", None)

    # A tampered model file: refused with one line, and the previous state is intact.
    version = _versions(capsys, config)[0]
    model_file = Path(str(version["path"])) / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    capsys.readouterr()
    assert _run(config, "classify", str(DEMO_MAIL[0]), "--json") == 1
    err = capsys.readouterr().err.strip()
    assert "has changed since it was registered" in err and "\n" not in err
