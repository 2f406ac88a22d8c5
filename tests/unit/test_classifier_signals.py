"""Severity signals: each one in each language, accent-insensitive, and silence on ordinary text."""

from __future__ import annotations

import pytest

from classifier import find_signals
from classifier.signals import SIGNAL_FLOORS, fold

# (signal, language, text): every signal in every supported language.
POSITIVE = [
    ("legal_threat", "en", "If this is not fixed by Friday my solicitor will contact you."),
    ("legal_threat", "en", "I will take you to court over this."),
    ("legal_threat", "de", "Andernfalls schalte ich meinen Anwalt ein."),
    ("legal_threat", "de", "Ich behalte mir rechtliche Schritte vor."),
    ("legal_threat", "hu", "Ellenkező esetben ügyvédhez fordulok."),
    ("legal_threat", "hu", "Ellenkezo esetben ugyvedhez fordulok."),
    ("legal_threat", "fr", "Sans réponse, je contacterai mon avocat."),
    ("legal_threat", "es", "Si no me devuelven el dinero, iré a un abogado."),
    ("regulator", "en", "I have reported this to the Financial Ombudsman."),
    ("regulator", "de", "Ich habe mich an die Verbraucherzentrale gewandt."),
    ("regulator", "hu", "Panaszt teszek a Fogyasztóvédelmi Hatóságnál."),
    ("regulator", "hu", "Bejelentést tettem a NAIH-nál."),
    ("regulator", "fr", "J'ai saisi la CNIL."),
    ("regulator", "es", "Pondré una hoja de reclamaciones."),
    ("safety_risk", "en", "The charger caught fire next to my daughter's bed."),
    ("safety_risk", "en", "The plastic melted and there was a burning smell."),
    ("safety_risk", "de", "Das Gerät hat beim Laden Funken gesprüht."),
    ("safety_risk", "de", "Mein Sohn hat sich dabei verletzt und musste in die Notaufnahme."),
    ("safety_risk", "hu", "A töltő kigyulladt az éjjeliszekrényen."),
    ("safety_risk", "hu", "A tolto kigyulladt az ejjeliszekrenyen."),
    ("safety_risk", "fr", "Le chargeur a pris feu."),
    ("safety_risk", "es", "El cargador empezó a echar humo."),
    ("data_breach", "en", "My account was hacked and someone ordered a laptop."),
    ("data_breach", "de", "Mein Konto wurde gehackt."),
    ("data_breach", "de", "Nach dem Datenleck wurden Beträge abgebucht."),
    ("data_breach", "hu", "Adatszivárgás történt, a kártyámmal visszaéltek."),
    ("data_breach", "fr", "Il y a eu une fuite de données."),
    ("data_breach", "es", "Hubo una filtración de datos."),
    ("outage", "en", "There is an outage in the whole street since this morning."),
    ("outage", "de", "Seit gestern haben wir kein Internet, Totalausfall."),
    ("outage", "hu", "Reggel óta áramszünet van nálunk."),
    ("outage", "fr", "Coupure de courant depuis ce matin."),
    ("outage", "es", "Llevamos dos días sin internet."),
    ("repeated_contact", "en", "This is the third email I am sending about this."),
    ("repeated_contact", "en", "I have called you three times and nobody has replied."),
    ("repeated_contact", "de", "Ich schreibe Ihnen zum dritten Mal."),
    ("repeated_contact", "de", "Ich habe bereits mehrfach angerufen."),
    ("repeated_contact", "hu", "Már sokadszor írok ebben az ügyben."),
    ("repeated_contact", "hu", "Háromszor telefonáltam, senki nem válaszolt."),
    ("repeated_contact", "fr", "Je vous ai écrit plusieurs fois."),
    ("repeated_contact", "es", "Les he escrito varias veces."),
    ("escalation_request", "en", "I want to speak to a manager."),
    ("escalation_request", "en", "Please treat this as a formal complaint."),
    ("escalation_request", "de", "Ich möchte mit Ihrem Vorgesetzten sprechen."),
    ("escalation_request", "de", "Ich moechte mit Ihrem Vorgesetzten sprechen."),
    ("escalation_request", "hu", "Kérem, hadd beszéljek a felettesével."),
    ("escalation_request", "fr", "Je veux parler à un responsable."),
    ("escalation_request", "es", "Quiero hablar con un supervisor."),
]

# Ordinary complaints and messages in each language: no floor at all.
NEGATIVE = [
    "Hi, my parcel is two days late. Could you tell me when it will arrive? Thanks, Ann",
    "The brand new jacket I bought has a loose button. Can I swap it in the shop?",
    "I was charged twice for my March invoice. Please refund the second payment.",
    "Thanks for the quick help last week, your colleague Sue was great.",
    "The chocolate melted a bit in the van, but it tastes fine. Just so you know.",
    "Hallo, mein Paket ist noch nicht angekommen. Können Sie bitte nachsehen?",
    "Die Rechnung für März ist doppelt abgebucht worden, bitte erstatten.",
    "Der Kundenservice war sehr freundlich, vielen Dank für die Hilfe!",
    "Entschuldigen Sie die Störung, ich habe eine Frage zu meinem Tarif.",
    "Jó napot! A csomagom még nem érkezett meg, mikorra várható?",
    "A márciusi számlát kétszer vonták le, kérem a visszatérítést.",
    "Köszönöm a gyors segítséget, nagyon elégedett vagyok.",
    "Bonjour, ma commande n'est pas encore arrivée.",
    "Hola, mi pedido todavía no ha llegado.",
]


@pytest.mark.parametrize(("name", "language", "text"), POSITIVE)
def test_each_signal_in_each_language(name: str, language: str, text: str) -> None:
    found = {signal.name: signal for signal in find_signals(text)}
    assert name in found, f"{name} not found in {text!r}"
    assert found[name].floor == SIGNAL_FLOORS[name]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_text_fires_nothing(text: str) -> None:
    assert find_signals(text) == []


def test_every_signal_and_language_is_tested() -> None:
    covered = {(name, language) for name, language, _ in POSITIVE}
    for name in SIGNAL_FLOORS:
        for language in ("en", "de", "hu", "fr", "es"):
            assert (name, language) in covered


def test_floors_follow_the_rubric() -> None:
    assert {name for name, floor in SIGNAL_FLOORS.items() if floor == "critical"} == {
        "legal_threat", "regulator", "safety_risk", "data_breach",
    }  # fmt: skip
    assert {name for name, floor in SIGNAL_FLOORS.items() if floor == "high"} == {
        "outage", "repeated_contact", "escalation_request",
    }  # fmt: skip


def test_matching_respects_word_boundaries() -> None:
    assert find_signals("I love my suede shoes and the Sue Ryder shop") == []
    assert find_signals("A Brandneue Jacke, fresh from the issue tracker") == []
    assert find_signals("Die Anwaltskanzlei nebenan hat ein neues Schild.") == []


def test_fold_removes_accents_and_transliteration() -> None:
    assert fold("Ügyvédhez") == fold("ugyvedhez") == "ugyvedhez"
    assert fold("Rückruf") == fold("Rueckruf")
    assert fold("Straße") == "strasse"


def test_signals_come_in_a_fixed_order_one_per_name() -> None:
    text = "I want to speak to a manager. My lawyer says sue. I will sue you. Lawyer again."
    names = [signal.name for signal in find_signals(text)]
    assert names == ["legal_threat", "escalation_request"]
    first = find_signals(text)[0]
    assert first.language == "en" and first.phrase == "lawyer"
