"""Training, saving, loading and predicting, on small slices of training_data/."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import skops.io
from sklearn.feature_extraction.text import HashingVectorizer

from classifier import (
    UNCLASSIFIED,
    ComplaintClassifier,
    DataError,
    LabelledExample,
    ModelLoadError,
    TrainedModel,
    default_training_files,
    evaluate,
    load_examples,
    load_model,
    prepare_text,
    save_model,
    train_model,
)
from classifier.heads import JointHeads, softmax, tfidf
from classifier.skops_plain import NotPlainDataError, read_plain
from classifier.store import ALLOWED_TYPES, MODEL_FILE
from classifier.vectorize import HashedFeatures

LAWYER = (
    "Refund still missing",
    "You charged me 129 EUR twice. If it is not refunded this week my lawyer will write.",
)


@pytest.fixture(scope="module")
def examples() -> list[LabelledExample]:
    return load_examples(default_training_files())


@pytest.fixture(scope="module")
def trained(examples: list[LabelledExample]) -> TrainedModel:
    return train_model(examples[::4], seed=0, cv_folds=2, progress=False)


@pytest.fixture(scope="module")
def saved_dir(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    save_model(trained, directory)
    return directory


def _items(examples: list[LabelledExample], step: int = 7) -> list[tuple[str, str]]:
    return [(example.subject, example.body) for example in examples[1::step]]


def test_save_and_reload_gives_identical_predictions(
    trained: TrainedModel, saved_dir: Path, examples: list[LabelledExample]
) -> None:
    card = json.loads((saved_dir / "card.json").read_text(encoding="utf-8"))
    loaded = load_model(saved_dir, expected_sha256=card["sha256"])
    items = _items(examples)
    before = trained.classifier.predict_many(items)
    after = loaded.predict_many(items)
    assert [p.category for p in before] == [p.category for p in after]
    assert [p.severity for p in before] == [p.severity for p in after]
    assert [p.signals for p in before] == [p.signals for p in after]
    counts = loaded.features.transform([prepare_text(s, b) for s, b in items])
    for head in ("category", "severity"):
        original, reloaded = trained.classifier.heads[head], loaded.heads[head]
        assert original is not None and reloaded is not None
        assert np.array_equal(original.probabilities(counts), reloaded.probabilities(counts))
    assert all(p.model_version == card["version"] for p in after)


def test_model_folder_holds_file_card_and_pictures(saved_dir: Path) -> None:
    assert sorted(path.name for path in saved_dir.iterdir()) == [
        "card.json", "confusion_category.png", "confusion_severity.png", MODEL_FILE,
    ]  # fmt: skip
    for picture in ("confusion_category.png", "confusion_severity.png"):
        assert (saved_dir / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((saved_dir / "card.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", card["version"])
    assert card["version"].endswith(card["sha256"][:8])
    assert card["seed"] == 0 and card["cv_folds"] == 2
    assert len(card["data"]["sha256"]) == 64
    assert set(card["heads"]) == {"category", "severity"}
    category = card["heads"]["category"]
    assert sum(category["label_counts"].values()) == card["data"]["examples"]
    assert {"accuracy", "macro_f1", "per_class", "log_loss", "ece"} <= set(category["cv"])
    assert card["heads"]["severity"]["cv_with_signal_floors"]["n"] > 0
    assert {"scikit-learn", "numpy", "skops", "py3langid", "python"} <= set(card["libraries"])
    assert card["parameters"]["features"]["kind"] == "complaintd-hash-v1"
    assert card["training_seconds"] > 0 and card["trained_at"]
    assert set(card["non_default_types"]) <= ALLOWED_TYPES


def test_training_is_reproducible(examples: list[LabelledExample]) -> None:
    subset = examples[::9]
    first = train_model(subset, seed=3, cv_folds=2, progress=False)
    second = train_model(subset, seed=3, cv_folds=2, progress=False)
    items = _items(examples, step=11)
    counts = first.classifier.features.transform([prepare_text(s, b) for s, b in items])
    a, b = first.classifier.heads["category"], second.classifier.heads["category"]
    assert a is not None and b is not None
    assert np.array_equal(a.probabilities(counts), b.probabilities(counts))
    assert first.card["heads"] == second.card["heads"]


def test_a_flipped_byte_is_refused(saved_dir: Path, tmp_path: Path) -> None:
    card = json.loads((saved_dir / "card.json").read_text(encoding="utf-8"))
    data = bytearray((saved_dir / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / MODEL_FILE
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="changed since it was registered"):
        load_model(tampered, expected_sha256=card["sha256"])
    with pytest.raises(ModelLoadError):  # without a checksum the zip's CRC still catches it
        load_model(tampered)


class Untrusted:
    """Any type outside the allow-list, e.g. what a tampered file could smuggle in."""

    def __init__(self) -> None:
        self.payload = "run me"


def test_a_file_with_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MODEL_FILE
    skops.io.dump({"format": 1, "heads": {"category": Untrusted()}}, path)
    assert skops.io.get_untrusted_types(file=path)  # skops itself would not trust it
    with pytest.raises(ModelLoadError, match="outside the allow-list"):
        load_model(path)


def test_missing_corrupt_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        load_model(tmp_path / "nothing-here")
    garbage = tmp_path / "garbage.skops"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ModelLoadError, match="not a readable skops file"):
        load_model(garbage)
    foreign = tmp_path / "foreign.skops"
    skops.io.dump({"format": 99}, foreign)
    with pytest.raises(ModelLoadError, match="not a complaintd model"):
        load_model(foreign)
    broken = tmp_path / "broken.skops"
    skops.io.dump({"format": 1, "features": {"kind": "other"}, "heads": {}}, broken)
    with pytest.raises(ModelLoadError, match="not a usable complaintd model"):
        load_model(broken)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda payload: payload["features"].update(word_bits=17), "do not match the features"),
        (lambda payload: payload["heads"]["category"]["classes"].__setitem__(0, 1), "strings"),
        (lambda payload: payload["heads"]["severity"]["idf"].pop(), "do not match the features"),
    ],
    ids=["feature-size", "label-type", "missing-block"],
)
def test_a_well_formed_model_whose_parts_do_not_fit_is_refused_at_load(
    saved_dir: Path, tmp_path: Path, tamper: Any, message: str
) -> None:
    payload = read_plain((saved_dir / "model.skops").read_bytes())
    tamper(payload)
    tampered = tmp_path / "model.skops"
    skops.io.dump(payload, tampered)
    with pytest.raises(ModelLoadError, match=message):
        load_model(tampered)


def test_abstention_threshold(trained: TrainedModel, examples: list[LabelledExample]) -> None:
    model = trained.classifier
    items = _items(examples, step=13)
    model.abstain_below = 0.0
    confident = model.predict_many(items)
    assert all(p.category != UNCLASSIFIED for p in confident)
    target = min(confident, key=lambda p: p.category_confidence)
    model.abstain_below = min(1.0, target.category_confidence + 1e-9)
    again = model.predict_many(items)
    unsure = again[confident.index(target)]
    assert unsure.category == UNCLASSIFIED
    assert unsure.category_confidence == target.category_confidence
    assert sum(p.category == UNCLASSIFIED for p in again) >= 1
    model.abstain_below = 0.35
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.abstain_below = 1.5


def test_empty_text_and_foreign_language_fall_back(trained: TrainedModel) -> None:
    model = trained.classifier
    empty = model.predict("", "   ")
    assert (empty.category, empty.category_confidence) == (UNCLASSIFIED, 0.0)
    assert (empty.severity, empty.language, empty.signals) == ("medium", None, ())
    french = model.predict(
        "Colis jamais arrivé",
        "Bonjour, j'ai commandé une table il y a trois semaines et le colis n'est "
        "jamais arrivé. Le suivi indique qu'il a été livré, mais je n'ai rien reçu.",
    )
    assert french.language == "fr"
    assert french.category == UNCLASSIFIED  # trained on en/de/hu only
    # The model cannot read it, so it does not guess the severity either: the
    # default, with no confidence, raised only by a signal it can recognise.
    assert (french.severity, french.severity_confidence) == ("medium", 0.0)
    japanese = model.predict(
        "充電器が発火しました",
        "御社で購入した充電器が昨夜発火し、子供が手にやけどを負いました。弁護士に相談しています。",
    )
    assert japanese.language == "ja" and japanese.category == UNCLASSIFIED
    assert (japanese.severity, japanese.severity_confidence) == ("medium", 0.0)
    spanish = model.predict(
        "Cargador incendiado",
        "El cargador que compré se incendió anoche y mi hijo sufrió quemaduras. "
        "Mi abogado se pondrá en contacto con ustedes.",
    )
    assert spanish.category == UNCLASSIFIED
    assert spanish.severity == "critical" and spanish.signals


def test_signal_floor_raises_severity(trained: TrainedModel) -> None:
    prediction = trained.classifier.predict(*LAWYER)
    assert prediction.severity == "critical"
    assert prediction.severity_confidence == 1.0
    assert "legal_threat" in prediction.signals
    assert prediction.language == "en"
    assert trained.classifier.predict_many([LAWYER])[0] == prediction


def test_any_label_set_without_severity(examples: list[LabelledExample], tmp_path: Path) -> None:
    names = {"billing": "money", "delivery": "parcel", "technical": "gadget"}
    custom = [
        LabelledExample(example.subject, example.body, names[example.category])
        for example in examples[::2]
        if example.category in names
    ]
    trained = train_model(custom, seed=0, cv_folds=2, progress=False)
    assert trained.classifier.categories == ("gadget", "money", "parcel")
    assert trained.classifier.severities is None
    assert trained.card["severity_head"] is False
    saved = save_model(trained, tmp_path / "custom")
    assert not (tmp_path / "custom" / "confusion_severity.png").exists()
    model = load_model(saved.path, expected_sha256=saved.sha256)
    plain = model.predict("Invoice wrong", "The invoice shows the wrong amount, please correct it.")
    assert plain.category in {"money", "parcel", "gadget", UNCLASSIFIED}
    assert (plain.severity, plain.severity_confidence) == ("medium", 0.0)
    threat = model.predict(*LAWYER)
    assert (threat.severity, threat.severity_confidence) == ("critical", 1.0)
    result = evaluate(custom[::3], model=model)
    assert set(result["per_class"]) == {"gadget", "money", "parcel"}


def test_a_shorter_severity_scale_caps_the_floors(examples: list[LabelledExample]) -> None:
    short = [
        LabelledExample(
            e.subject, e.body, e.category, "high" if e.severity == "critical" else e.severity
        )
        for e in examples[::3]
    ]
    model = train_model(short, seed=0, cv_folds=2, progress=False).classifier
    assert model.severities == ("high", "low", "medium")
    assert model.predict(*LAWYER).severity == "high"


def test_capitalised_severities_come_out_in_lower_case(examples: list[LabelledExample]) -> None:
    shouted = [
        LabelledExample(e.subject, e.body, e.category, str(e.severity).capitalize())
        for e in examples[::3]
    ]
    model = train_model(shouted, seed=0, cv_folds=2, progress=False).classifier
    assert model.severities == ("Critical", "High", "Low", "Medium")
    predictions = model.predict_many(_items(examples, step=5))
    assert {p.severity for p in predictions} <= {"critical", "high", "low", "medium"}
    assert any(not p.signals for p in predictions)  # the path without a floor is covered
    lawyer = model.predict(*LAWYER)
    assert (lawyer.severity, lawyer.severity_confidence) == ("critical", 1.0)


def test_evaluate_shapes(trained: TrainedModel, examples: list[LabelledExample]) -> None:
    subset = examples[2::10]
    scored = evaluate(subset, model=trained.classifier)
    assert set(scored) == {"n", "accuracy", "macro_f1", "per_class"}
    assert scored["n"] == len(subset)
    assert set(next(iter(scored["per_class"].values()))) == {"precision", "recall", "f1", "support"}
    severity = evaluate(subset, model=trained.classifier, head="severity")
    assert set(severity["per_class"]) == {"low", "medium", "high", "critical"}
    crossed = evaluate(examples[::6], cv_folds=2)
    assert set(crossed) == {"n", "accuracy", "macro_f1", "per_class"}
    assert 0.3 < crossed["macro_f1"] <= 1.0
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(subset)


def test_data_errors_are_clear(tmp_path: Path) -> None:
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\nhello there,a\nsecond text,a\n", encoding="utf-8")
    # One class loads (a model can be scored on it) but cannot be trained on.
    single = load_examples([one_class], text_column="text", label_column="label")
    with pytest.raises(DataError, match="at least two different labels"):
        train_model(single, progress=False)
    with pytest.raises(DataError, match=r"missing column\(s\) 'subject', 'body'"):
        load_examples([one_class])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_examples([empty])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "a", "body": "b", "category": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_examples([bad])
    with pytest.raises(DataError, match="no such file"):
        load_examples([tmp_path / "missing.csv"])
    lonely = [LabelledExample("s", "first text", "a"), LabelledExample("s", "other", "a"),
              LabelledExample("s", "third text", "b")]  # fmt: skip
    with pytest.raises(DataError, match="single example"):
        train_model(lonely, progress=False)


def test_semicolon_and_tab_separated_files_load_like_comma_separated_ones(tmp_path: Path) -> None:
    # Excel writes ';' in German and Hungarian locales, with a BOM.
    rows = [("Rechnung doppelt; bitte prüfen", "billing"), ("Paket fehlt, seit Tagen", "delivery")]
    for name, delimiter, bom in (("semi.csv", ";", "\ufeff"), ("tabs.csv", "\t", "")):
        path = tmp_path / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(bom)
            writer = csv.writer(handle, delimiter=delimiter)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        examples = load_examples([path], text_column="text", label_column="label")
        assert [(e.body, e.category) for e in examples] == rows


def test_csv_with_a_text_column(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text(
        'text,category,priority\n"Refund\n\nWhere is my refund?",money,high\n'
        "App crash on login,tech,low\n,tech,low\n",
        encoding="utf-8",
    )
    loaded = load_examples([path], text_column="text", severity_column="priority")
    # The row without text is skipped.
    assert [(e.subject, e.category, e.severity) for e in loaded] == [
        ("", "money", "high"),
        ("", "tech", "low"),
    ]
    assert loaded[0].body.startswith("Refund")


def test_hashed_character_counts_match_scikit_learn_char_wb() -> None:
    texts = ["ab cd", "", "a", "árvíztűrő tükörfúrógép", "zamountz twice, ok?"]
    ours = HashedFeatures().chars(texts)
    theirs = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), alternate_sign=False, norm=None, lowercase=False
    ).transform(texts)
    assert list(np.asarray(ours.sum(axis=1)).ravel()) == list(
        np.asarray(theirs.sum(axis=1)).ravel()
    )
    words = HashedFeatures().words(texts)
    assert list(np.asarray(words.sum(axis=1)).ravel()) == [3.0, 0.0, 0.0, 3.0, 5.0]
    assert HashedFeatures().transform([])[0].shape == (0, 2**18)


def test_predict_is_predict_many_of_one(trained: TrainedModel) -> None:
    model: ComplaintClassifier = trained.classifier
    subject, body = "Parcel damaged", "The box arrived crushed and the vase inside is broken."
    assert model.predict(subject, body) == model.predict_many([(subject, body)])[0]


def _same(a: object, b: object) -> bool:
    """Deep equality of loaded payloads (arrays by dtype and value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def test_plain_reader_reads_what_skops_reads(saved_dir: Path) -> None:
    data = (saved_dir / MODEL_FILE).read_bytes()
    plain = read_plain(data)
    assert _same(plain, skops.io.loads(data, trusted=sorted(ALLOWED_TYPES)))
    assert plain["heads"]["category"]["weights"].dtype == np.float32


@pytest.mark.parametrize(
    "payload",
    [
        {"format": 1, "heads": {"category": Untrusted()}},
        {"format": 1, "labels": np.asarray(["a", 1], dtype=object)},
        {"format": 1, "pair": ("a", "b")},
        {"format": 1, 7: "a key that is not a string"},
    ],
)
def test_plain_reader_refuses_anything_else(payload: dict[Any, Any], tmp_path: Path) -> None:
    path = tmp_path / MODEL_FILE
    skops.io.dump(payload, path)
    with pytest.raises(NotPlainDataError):
        read_plain(path.read_bytes())


def test_plain_reader_refuses_an_unknown_protocol(saved_dir: Path, tmp_path: Path) -> None:
    source = zipfile.ZipFile(saved_dir / MODEL_FILE)
    schema = json.loads(source.read("schema.json"))
    schema["protocol"] = 99
    forged = tmp_path / MODEL_FILE
    with zipfile.ZipFile(forged, "w") as target:
        for name in source.namelist():
            data = json.dumps(schema).encode() if name == "schema.json" else source.read(name)
            target.writestr(name, data)
    with pytest.raises(NotPlainDataError, match="protocol"):
        read_plain(forged.read_bytes())
    with pytest.raises(ModelLoadError):  # and skops, the fallback, refuses it too
        load_model(forged)


def test_loading_imports_neither_skops_nor_scikit_learn(saved_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from classifier import load_model; "
        f"model = load_model(Path({str(saved_dir)!r})); "
        "print(model.predict('Parcel lost', 'My parcel never arrived.').category); "
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'sklearn', 'skops'}))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    category, imported = completed.stdout.strip().splitlines()
    assert category and imported == "[]"


def test_joint_heads_equal_the_tfidf_product(
    trained: TrainedModel, examples: list[LabelledExample]
) -> None:
    model = trained.classifier
    counts = model.features.transform([prepare_text(s, b) for s, b in _items(examples, 5)])
    heads = [head for head in model.heads.values() if head is not None]
    joint = JointHeads(tuple(heads)).probabilities(counts)
    for head, together in zip(heads, joint, strict=True):
        weights = np.zeros((sum(len(vector) for vector in head.idf), len(head.classes)))
        weights[head.columns] = head.weights.T
        features = sp.hstack(
            [tfidf(block, idf) for block, idf in zip(counts, head.idf, strict=True)], format="csr"
        )
        reference = softmax((features @ weights + head.intercept) / head.temperature)
        assert np.allclose(head.probabilities(counts), reference, atol=1e-5)
        assert np.allclose(together, reference, atol=1e-5)
        assert (together.argmax(axis=1) == reference.argmax(axis=1)).all()


def test_empty_texts_hash_to_empty_rows() -> None:
    for texts in ([""], ["", ""], ["", "ab"]):
        words, chars = HashedFeatures().transform(texts)
        assert words.shape == chars.shape == (len(texts), 2**18)
        assert chars[: texts.count("")].nnz == 0


def test_a_damaged_deflated_member_is_refused_cleanly(saved_dir: Path, tmp_path: Path) -> None:
    source = zipfile.ZipFile(saved_dir / MODEL_FILE)
    damaged = tmp_path / MODEL_FILE
    with zipfile.ZipFile(damaged, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    data = bytearray(damaged.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside a deflated array
    damaged.write_bytes(bytes(data))
    with pytest.raises(NotPlainDataError):
        read_plain(bytes(data))
    with pytest.raises(ModelLoadError):
        load_model(damaged)
