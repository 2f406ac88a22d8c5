"""Explainable severity signals: small per-language lexicons that set a severity floor.

A complaint that threatens a lawyer or a regulator, reports a fire, a data breach
or an outage, says it is the third time of asking, or asks for a manager is never
less severe than the floor its signal implies, whatever the model estimates.

Matching is accent-insensitive and tolerant of German transliteration: text and
patterns are both *folded* (accents removed, ``ß`` → ``ss``, ``ae``/``oe``/``ue``
→ ``a``/``o``/``u``, lower case), so "Lebensgefahr", "ügyvédhez", "ugyvedhez",
"Rueckruf" and "Rückruf" match the same entries. Every entry is anchored at a word
start and, unless it says otherwise with ``\\w*``, at a word end. All languages are
searched in every text, because customers mix languages and short texts are often
misdetected; entries are therefore chosen not to be ordinary words in another
supported language (German "Brand" is not an entry, "Brandgefahr" is).

Writing entries: plain lower-case phrases with a little regex (``\\w*``, ``?``,
``(?:a|b)``); a space matches any run of whitespace. Do not write the letter
pairs ``ae``/``oe``/``ue`` inside character classes (folding rewrites them).

Pure: no I/O; patterns are compiled on first use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

__all__ = ["SIGNAL_FLOORS", "Signal", "find_signals", "fold"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One explainable reason for a minimum severity."""

    name: str
    """``legal_threat``, ``regulator``, ``safety_risk``, ``data_breach``, ``outage``,
    ``repeated_contact`` or ``escalation_request``."""
    floor: str
    """The least severity this signal allows (on the default scale)."""
    language: str
    """The lexicon (ISO 639-1) whose entry matched."""
    phrase: str
    """The matched words, folded (see :func:`fold`): "ugyvedemhez" for "ügyvédemhez"."""


SIGNAL_FLOORS: dict[str, str] = {
    # The rubric in training_data/README.md: legal or regulatory threats, safety risks
    # and data breaches are critical; an outage makes the service unusable (high; the
    # model decides whether it is "for many", i.e. critical); repeated failed contact
    # and an explicit demand to escalate are high.
    "legal_threat": "critical",
    "regulator": "critical",
    "safety_risk": "critical",
    "data_breach": "critical",
    "outage": "high",
    "repeated_contact": "high",
    "escalation_request": "high",
}

_NUMBER_EN = (
    r"(?:twice|two times|three times|four times|five times|several times|many times|"
    r"multiple times|numerous times|countless times|\d+ times)"
)
_CONTACT_EN = (
    r"(?:called|phoned|rang|emailed|e-mailed|written|wrote|contacted|messaged|chased|"
    r"complained|reported|raised)(?! me\b)"
)
_NUMBER_DE = (
    r"(?:zweimal|dreimal|viermal|funfmal|mehrmals|mehrfach|x-mal|etliche male|"
    r"wiederholt|oft)"
)
_CONTACT_DE = (
    r"(?:angerufen|geschrieben|gemeldet|kontaktiert|nachgefragt|reklamiert|gemailt|"
    r"beschwert|angeschrieben|erinnert|telefoniert|nachgehakt)"
)
_NUMBER_HU = (
    r"(?:tobbszor|ketszer|haromszor|negyszer|otszor|hatszor|tobb alkalommal|"
    r"szamos alkalommal|ismetelten)"
)
_CONTACT_HU = (
    r"(?:irtam|irtunk|hivtam|hivtuk|hivtunk|telefonaltam|telefonaltunk|jeleztem|jeleztuk|"
    r"reklamaltam|reklamaltunk|kerestem|kerestuk|panaszoltam|fordultam|fordultunk)"
)

_LEXICONS: dict[str, dict[str, tuple[str, ...]]] = {
    "legal_threat": {
        "en": (
            r"lawyers?",
            r"solicitors?",
            r"legal (?:action|proceedings|steps|advice|team|counsel|route|dispute)",
            r"(?:take|taking|bring|see) (?:you|this|it|the matter|your company) to court",
            r"small claims(?: court)?",
            r"county court",
            r"court (?:action|claim|proceedings|case)",
            r"sue (?:you|your \w+|the company|them)",
            r"going to sue",
            r"suing",
            r"lawsuit",
            r"litigation",
            r"letter before (?:action|claim)",
        ),
        "de": (
            r"(?:rechts)?anwalt(?:in|e|en|s)?",
            r"rechtliche\w* schritte\w*",
            r"juristische\w* schritte\w*",
            r"rechtsweg\w*",
            r"vor gericht",
            r"gerichtlich\w*",
            r"gerichtsverfahren",
            r"klage",
            r"verklagen",
            r"(?:schadensersatz|schadenersatz)klage\w*",
            r"mahnbescheid\w*",
        ),
        "hu": (
            r"ugyved\w*",
            r"jogi (?:lepes\w*|uton|eljaras\w*|kepviselo\w*)",
            r"birosag(?:ra|hoz|on)",
            r"birosagi (?:ut\w*|eljaras\w*|lepes\w*|kereset\w*)",
            r"(?:be)?perel\w*",
            r"pert (?:inditok|inditunk|indit\w*)",
            r"peres (?:ut\w*|eljaras\w*)",
            r"fizetesi meghagyas\w*",
            r"feljelentes\w*",
        ),
        "fr": (
            r"avocats?",
            r"poursuites? judiciaires?",
            r"action en justice",
            r"tribunal",
            r"mise en demeure",
            r"porter plainte",
        ),
        "es": (
            r"abogad(?:o|a|os|as)",
            r"demandar\w*",
            r"acciones legales",
            r"via judicial",
            r"tribunal(?:es)?",
            r"denuncia\w*",
        ),
    },
    "regulator": {
        "en": (
            r"ombudsman",
            r"trading standards",
            r"regulators?",
            r"fca",
            r"ofcom",
            r"ofgem",
            r"ofwat",
            r"information commissioner\w*",
            r"ico",
            r"consumer (?:protection|rights) (?:agency|authority|office|body)",
            r"data protection (?:authority|regulator|commissioner)",
            r"citizens advice",
            r"watchdog",
        ),
        "de": (
            r"verbraucherzentrale\w*",
            r"verbraucherschutz\w*",
            r"schlichtungsstelle\w*",
            r"bundesnetzagentur",
            r"bafin",
            r"(?:datenschutz)?aufsichtsbehorde\w*",
            r"datenschutzbehorde\w*",
            r"landesdatenschutzbeauftragte\w*",
            r"gewerbeaufsicht\w*",
            r"gesundheitsamt\w*",
            r"ordnungsamt\w*",
        ),
        "hu": (
            r"fogyasztovedelm\w*",
            r"fogyasztovedelem",
            r"bekelteto\w*",
            r"naih\w*",
            r"mnb",
            r"gvh",
            r"versenyhivatal\w*",
            r"nmhh\w*",
            r"nebih\w*",
            r"hatosag\w*",
            r"kormanyhivatal\w*",
            r"ombudsman\w*",
        ),
        "fr": (
            r"dgccrf",
            r"cnil",
            r"mediateur",
            r"autorite de (?:regulation|controle)",
            r"association de consommateurs",
        ),
        "es": (
            r"aepd",
            r"oficina (?:municipal )?de (?:informacion al )?consumo",
            r"hoja de reclamaciones",
            r"defensor del (?:cliente|pueblo)",
        ),
    },
    "safety_risk": {
        "en": (
            r"caught fire",
            r"on fire",
            r"fire (?:hazard|brigade|service|department)",
            r"(?:started|starting|start) a fire",
            r"(?:burst|bursting) into flames",
            r"flames",
            r"(?:started|began|starts) (?:to )?smok(?:e|ing)",
            r"smoke (?:coming|came|pouring|poured|billowing|everywhere)",
            r"(?:filled with|full of) smoke",
            r"sparks",
            r"sparking",
            r"sparked",
            r"electric (?:shock|shocks)",
            r"got a shock",
            r"electrocuted",
            r"exploded",
            r"explosion",
            r"overheat\w*",
            r"(?:burning|burnt|electrical) smell",
            r"smell\w* of burning",
            (
                r"(?:plastic|casing|cable|plug|socket|charger|wire|wiring|insulation) "
                r"(?:\w+ ){0,2}melted"
            ),
            r"melted (?:the )?(?:plastic|casing|cable|plug|socket|insulation)",
            r"(?:burnt|burned|burns|scalded|scalding) (?:my|his|her|their|our|him|me|us)",
            r"(?:suffered|got) (?:\w+ )?burns",
            r"burn injur\w*",
            r"injur\w*",
            r"(?:taken|rushed|admitted|ended up|went) (?:\w+ ){0,2}(?:to|in) (?:hospital|a&e)",
            r"ambulance",
            r"chok(?:e|ed|ing)",
            r"poison\w*",
            r"allergic reaction",
            r"anaphyla\w*",
            r"gas leak",
            r"smell of gas",
            r"carbon monoxide",
            r"unsafe",
            r"dangerous",
            r"hazard\w*",
            r"(?:piece|pieces|shard|shards|fragment|fragments) of (?:glass|metal)",
            r"glass (?:in|shards?|splinters?)",
            r"foreign (?:object|body)",
            r"could have (?:been killed|killed|died)",
        ),
        "de": (
            r"brand (?:geraten|gesetzt)",
            r"brand(?:gefahr|geruch|loch|fleck|schaden|stelle)\w*",
            r"feuer",
            r"feuerwehr",
            r"abgebrannt",
            r"brannte",
            r"rauch",
            r"rauchte",
            r"rauchentwicklung",
            r"qualm\w*",
            r"funken\w*",
            r"stromschlag\w*",
            r"explodiert\w*",
            r"explosion",
            r"uberhitz\w*",
            r"verschmort\w*",
            r"(?:riecht|roch|riechen) (?:\w+ ){0,2}verbrannt",
            r"(?:kabel|stecker|gehause|plastik|kunststoff|steckdose|ladegerat|netzteil)\w* "
            r"(?:\w+ ){0,2}geschmolzen",
            r"verbrennungen",
            r"verbruh\w*",
            r"(?:mich|sich|uns) (?:\w+ ){0,3}verletzt",
            r"(?:schwer|leicht|dabei) verletzt",
            r"verletzungen",
            r"krankenhaus (?:gebracht|eingeliefert|behandelt)\w*",
            r"notaufnahme",
            r"notarzt\w*",
            r"krankenwagen",
            r"rettungswagen",
            r"erstick\w*",
            r"vergift\w*",
            r"allergische\w* reaktion\w*",
            r"anaphyla\w*",
            r"gasgeruch",
            r"gasleck",
            r"kohlenmonoxid",
            r"lebensgefahr\w*",
            r"lebensgefahrlich\w*",
            r"gefahrlich\w*",
            r"sicherheitsrisiko",
            r"glassplitter\w*",
            r"glasscherbe\w*",
            r"fremdkorper\w*",
        ),
        "hu": (
            r"tuz",
            r"tuzet",
            r"tuzben",
            r"tuzveszely\w*",
            r"tuzolto\w*",
            r"tuzeset\w*",
            r"kigyullad\w*",
            r"langra kap\w*",
            r"lang\w* csap\w*",
            r"fust (?:jott|szall|aradt)\w*",
            r"fustolni",
            r"fustolog\w*",
            r"fustszag\w*",
            r"szikraz\w*",
            r"szikra\w*",
            r"aramutes\w*",
            r"megrazta az aram",
            r"aramot raz\w*",
            r"felrobban\w*",
            r"robban\w*",
            r"tulmeleged\w*",
            r"eg(?:ett|es)szag\w*",
            r"egett szag\w*",
            r"megolvadt (?:a|az) (?:muanyag|kabel|dugo|csatlakozo|tolto|burkolat|konnektor)\w*",
            r"egesi\w*",
            r"megegett (?:a|az) (?:kez|bor|arc|ujj|lab)\w*",
            r"megegette (?:a|az) (?:kez|bor|arc|ujj|lab)\w*",
            r"leforraz\w*",
            r"korhazba (?:kellett|vittek|vittuk|szallitottak|kerult)\w*",
            r"surgossegi\w*",
            r"mentovel",
            r"mentot",
            r"mentoauto\w*",
            r"mergez\w*",
            r"allergias (?:reakcio|roham)\w*",
            r"gazszivargas\w*",
            r"gazszag\w*",
            r"szen-?monoxid\w*",
            r"fullad\w*",
            r"megfullad\w*",
            r"eletveszely\w*",
            r"balesetveszely\w*",
            r"veszelyes\w*",
            r"serulest szenved\w*",
            r"megserult (?:a|az) (?:fiam|lanyom|gyerek\w*|ferjem|felesegem|anyam|apam)",
            r"uvegszilank\w*",
            r"uvegdarab\w*",
            r"idegen (?:test|targy)\w*",
        ),
        "fr": (
            r"incendie",
            r"pris feu",
            r"fumee",
            r"etincelles?",
            r"electrocut\w*",
            r"explos\w*",
            r"brulure\w*",
            r"blesse\w*",
            r"urgences",
            r"dangereu\w*",
            r"intoxication",
        ),
        "es": (
            r"incendio",
            r"se incendio",
            r"humo",
            r"chispas",
            r"descarga electrica",
            r"explot\w*",
            r"quemadura\w*",
            r"urgencias",
            r"peligros(?:o|a|os|as)",
            r"intoxicacion",
        ),
    },
    "data_breach": {
        "en": (
            r"data (?:breach|leak)\w*",
            r"(?:security|privacy) breach\w*",
            (
                r"(?:data|details|information) (?:was|were|has been|have been) (?:leaked|"
                r"exposed|stolen|sold)"
            ),
            r"leaked (?:my|our|customer|customers'|personal) (?:data|details|information)",
            r"hacked",
            r"hackers?",
            r"compromised",
            (
                r"unauthori[sz]ed (?:access|login|log-in|logins|transactions?|payments?|"
                r"charges?|purchases?|debits?|direct debits?|withdrawals?|use|orders?)"
            ),
            r"identity theft",
            r"stolen identity",
            r"fraudulent\w*",
            r"someone (?:else )?(?:has )?(?:logged|logging) into my account",
            (
                r"(?:see|seeing|saw|shows?|showing) (?:another|someone else's|other (?:people's|"
                r"customers'?)) (?:customer's )?(?:data|details|account|orders?|invoices?|"
                r"address\w*)"
            ),
        ),
        "de": (
            r"datenleck\w*",
            r"datenpanne\w*",
            r"datenschutzverletzung\w*",
            r"datenschutzverstoss\w*",
            r"gehackt",
            r"hacker\w*",
            r"unbefugt\w* (?:zugriff\w*|zugang|abbuchung\w*|login\w*|nutzung|bestellung\w*)",
            r"unberechtigt\w* (?:zugriff\w*|zugang|login\w*|nutzung)",
            r"identitatsdiebstahl\w*",
            r"betrugerisch\w*",
            r"kontoubernahme",
            (
                r"daten (?:wurden|sind) (?:\w+ ){0,2}(?:weitergegeben|veroffentlicht|gestohlen|"
                r"abgeflossen)"
            ),
            r"fremde\w* (?:daten|kundendaten|bestellungen|rechnungen|adressen)",
        ),
        "hu": (
            r"adatszivarg\w*",
            r"adatvedelmi incidens\w*",
            r"adatlopas\w*",
            r"feltort\w*",
            r"feltortek",
            r"hackel\w*",
            r"illetektelen\w*",
            (
                r"jogosulatlan (?:hozzaferes|belepes|bejelentkezes|terheles|levonas|tranzakcio|"
                r"vasarlas|rendeles)\w*"
            ),
            r"visszaeltek",
            r"visszaeles\w*",
            r"szemelyazonossag-?lopas\w*",
            r"mas(?:ok)? (?:ugyfel\w* )?adatait",
        ),
        "fr": (
            r"fuite de donnees",
            r"violation de donnees",
            r"pirate",
            r"usurpation d'identite",
            r"fraude\w*",
            r"acces non autorise",
        ),
        "es": (
            r"filtracion de datos",
            r"brecha de (?:datos|seguridad)",
            r"hackead(?:o|a|os|as)",
            r"hackearon",
            r"suplantacion de identidad",
            r"fraude\w*",
            r"acceso no autorizado",
        ),
    },
    "outage": {
        "en": (
            r"outages?",
            r"down for (?:everyone|everybody|all of us|hours|days)",
            (
                r"(?:service|site|website|app|network|system|server|portal|platform|"
                r"checkout)s? (?:is |are |has been |have been |went |goes |"
                r"keeps going )?(?:completely |totally )?down"
            ),
            r"working for (?:anyone|everyone|nobody)",
            r"(?:whole|entire) (?:street|area|building|town|village|office|company)",
            r"nationwide",
            r"power cut",
            r"no power",
            r"no internet",
            r"no (?:phone|mobile) signal",
        ),
        "de": (
            r"(?:netz|gross|total|komplett)storung\w*",
            r"storung (?:im|des|der) (?:netz|system|dienst)\w*",
            r"ausfall",
            r"ausfalle",
            r"(?:total|strom|internet|server|system|netz|komplett|dienst)ausfall\w*",
            r"ausgefallen",
            r"kein internet",
            r"keinen strom",
            r"kein strom",
            r"kein netz",
            r"(?:ganze\w*|gesamte\w*) (?:strasse|haus|gebaude|viertel|ort|buro|firma)",
            r"bundesweit",
            r"komplett down",
        ),
        "hu": (
            r"leallas\w*",
            (
                r"leallt (?:a|az) (?:rendszer|szerver|halozat|szolgaltatas|weboldal|honlap|"
                r"alkalmazas|app)\w*"
            ),
            (
                r"(?:rendszer|szerver|halozat|szolgaltatas|weboldal|honlap|"
                r"alkalmazas)\w* (?:teljesen )?leallt"
            ),
            r"app (?:teljesen )?leallt",
            r"(?:szolgaltatas|internet|aram)?kieses\w*",
            r"aramszunet\w*",
            r"nincs (?:internet|aram|terero|halozat)\w*",
            r"uzemzavar\w*",
            r"egesz (?:utca|haz|kornyek|telepules|falu|iroda|ceg)\w*",
            r"orszagos (?:leallas|kieses|hiba|zavar)\w*",
        ),
        "fr": (
            r"panne (?:generale|totale|de reseau)",
            r"coupure\w*",
            r"service indisponible",
            r"plus d'internet",
        ),
        "es": (
            r"caida (?:del|de la) (?:servicio|red|sistema|web)",
            r"sin servicio",
            r"sin internet",
            r"apagon",
            r"corte de (?:luz|servicio|internet)",
        ),
    },
    "repeated_contact": {
        "en": (
            (
                r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|umpteenth|nth) (?:email|"
                r"e-mail|message|letter|call|request|complaint|reminder)"
            ),
            (
                r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|umpteenth|nth) time (?:\w+ ){0,2}"
                r"(?:write|writing|written|contact|contacting|contacted|email|emailing|"
                r"e-mailing|call|calling|called|ask|asking|asked|chase|chasing|chased|"
                r"complain|complaining)"
            ),
            rf"{_CONTACT_EN} (?:\w+ ){{0,4}}{_NUMBER_EN}",
            (
                r"(?:sent|made|written|after|despite) (?:you )?(?:\w+ )?(?:two|three|four|five|"
                r"several|many|multiple|numerous|countless|\d+) (?:emails|e-mails|calls|"
                r"phone calls|messages|letters|reminders|complaints)"
            ),
            (
                r"(?:still|yet) (?:no|not had an?|haven't had an?|have not had an?) (?:reply|"
                r"response|answer|call back|callback)"
            ),
            (
                r"(?:no one|nobody|no-one) (?:has )?(?:ever )?(?:replied|responded|answered|"
                r"got back|gotten back|called me back|called back)"
            ),
            (
                r"never (?:got|received|had) (?:a |an |any )?(?:reply|response|answer|call back|"
                r"callback)"
            ),
            r"(?:chased|chasing)",
            r"(?:previous|earlier) (?:emails|e-mails|messages|calls|complaints|letters)",
        ),
        "de": (
            r"zum (?:zweiten|dritten|vierten|funften|\d+\.|wiederholten|x-ten|n-ten) mal",
            rf"{_NUMBER_DE} (?:\w+ ){{0,4}}{_CONTACT_DE}",
            (
                r"(?:immer noch|bis heute|bisher|noch immer) (?:keine|ohne) (?:antwort|"
                r"ruckmeldung|reaktion|ruckruf)"
            ),
            r"keine\w* (?:antwort|ruckmeldung|reaktion|ruckruf) (?:erhalten|bekommen)",
            r"niemand (?:hat sich|hat mich|meldet sich|ruft)\w*",
            (
                r"(?:bisherigen|vorherigen|fruheren) (?:e-mails|emails|nachrichten|anrufe|"
                r"beschwerden|schreiben)"
            ),
            r"(?:schreibe|melde|wende) (?:mich |ihnen |uns )?(?:\w+ )?(?:erneut|wieder|nochmals)",
        ),
        "hu": (
            r"sokadszor\w*",
            rf"{_NUMBER_HU} (?:is )?(?:mar )?(?:\w+ ){{0,2}}{_CONTACT_HU}",
            rf"{_CONTACT_HU} (?:mar )?(?:\w+ ){{0,2}}{_NUMBER_HU}",
            r"(?:masod|harmad|negyed|otod|hatod)(?:szor|ik alkalommal)\w*",
            (
                r"(?:azota|mindmaig|mai napig|eddig) (?:sem|se|nem|semmilyen|"
                r"semmi) (?:\w+ ){0,2}valasz\w*"
            ),
            r"(?:senki|senki sem|senki nem) (?:valaszolt|reagalt|jelentkezett|hivott)\w*",
            r"(?:korabbi|elozo) (?:level\w*|email\w*|e-mail\w*|panasz\w*|megkereses\w*)",
        ),
        "fr": (
            r"plusieurs fois",
            r"plusieurs reprises",
            r"(?:deuxieme|troisieme|quatrieme) (?:fois|relance|message)",
            r"toujours (?:pas|aucune) de reponse",
            r"sans reponse",
            r"relance\w*",
        ),
        "es": (
            r"varias veces",
            r"(?:segunda|tercera|cuarta) vez",
            r"sin respuesta",
            r"(?:nadie|ninguno) (?:me )?ha (?:respondido|contestado|llamado)",
            r"(?:todavia|aun) (?:no|sin) (?:he recibido|respuesta)",
        ),
    },
    "escalation_request": {
        "en": (
            (
                r"(?:speak|talk|speaking|talking) (?:to|with) (?:(?:a|your|the|someone|"
                r"somebody) )?(?:manager|supervisor|senior|team leader|boss|person in charge|"
                r"someone senior|somebody senior)"
            ),
            (
                r"(?:manager|supervisor|someone senior|somebody senior) (?:to )?(?:call|contact|"
                r"ring|email) me"
            ),
            r"escalat\w*",
            r"complaints? (?:department|team|manager)",
            r"formal complaint",
            r"official complaint",
            r"head of (?:customer service|customer services|support|complaints)",
            r"your (?:ceo|managing director|chief executive)",
            r"senior management",
        ),
        "de": (
            r"vorgesetzte\w*",
            r"geschaftsfuhrung",
            r"geschaftsleitung",
            r"beschwerdeabteilung",
            r"beschwerdemanagement",
            r"(?:teamleit|abteilungsleit)\w* (?:sprechen|kontaktieren|anrufen)",
            r"eskalier\w*",
            r"eskalation\w*",
            r"(?:formliche|offizielle|formelle) beschwerde",
            r"dienstaufsichtsbeschwerde",
            r"verantwortlichen (?:\w+ ){0,2}sprechen",
        ),
        "hu": (
            r"felettes\w*",
            r"vezeto(?:jevel|vel|nek|jenek|jukkel|juket|jet|jehez|hoz)",
            (
                r"(?:ugyvezeto|igazgato)(?:val|vel|nak|nek|hoz|javal|janak|jahoz|jukkal|juknak|"
                r"jukhoz|jat)"
            ),
            r"panaszkezel\w* (?:osztaly|reszleg|vezeto)\w*",
            r"(?:hivatalos|irasos) panasz\w*",
            r"eszkal\w*",
            r"magasabb szintre",
        ),
        "fr": (
            r"parler (?:a|avec) (?:un|votre) (?:responsable|superieur|manager)",
            r"(?:votre|un) superieur",
            r"service reclamations?",
            r"reclamation (?:officielle|formelle)",
        ),
        "es": (
            r"hablar con (?:un|el|su) (?:responsable|supervisor|gerente|encargado)",
            r"supervisor",
            r"reclamacion (?:formal|oficial)",
            r"escalar\w*",
        ),
    },
}

_FOLD_PAIRS = (("ae", "a"), ("oe", "o"), ("ue", "u"))
_COMBINING_RE = re.compile(r"[\u0300-\u036f]")


def fold(text: str) -> str:
    """``text`` lower-cased, without accents, ``ß`` as ``ss``, ``ae``/``oe``/``ue`` as vowels.

    Applied to both the text and the lexicon entries, so spelling with or without
    accents (or with German transliteration) makes no difference.
    """
    folded = text.lower().replace("ß", "ss")
    if not folded.isascii():  # ASCII has nothing to decompose (most English mail)
        folded = _COMBINING_RE.sub("", unicodedata.normalize("NFKD", folded))
    for pair, single in _FOLD_PAIRS:
        folded = folded.replace(pair, single)
    return folded


_KEY_LENGTH = 4
_WORD_CHAR_RE = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class _Compiled:
    """The entries of one signal that can start with one key, as one pattern."""

    name: str
    floor: str
    pattern: re.Pattern[str]
    languages: tuple[str, ...]
    """Language of each top-level group of ``pattern``, in order."""


@dataclass(frozen=True, slots=True)
class _Index:
    by_key: dict[str, tuple[_Compiled, ...]]
    """First four characters of a word (or the whole word, if shorter) → candidates."""
    always: tuple[_Compiled, ...]
    """Entries whose first word cannot be told in advance; searched in every text."""
    keys: frozenset[str]
    finder: re.Pattern[str]
    """Matches the key of every word that has one, at the word's start (see _finder)."""


def _entry(source: str) -> str:
    return fold(source).replace(" ", r"\s+")


def _group_end(pattern: str, start: int) -> int:
    """Index just past the ``)`` closing the group opened at ``pattern[start]``."""
    depth = 0
    index = start
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError(f"unbalanced group in {pattern!r}")


def _alternatives(body: str) -> list[str]:
    """The top-level ``|`` alternatives of a group body."""
    parts: list[str] = []
    depth = 0
    last = 0
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(body[last:index])
            last = index + 1
        index += 1
    parts.append(body[last:])
    return parts


def _keys(pattern: str, prefix: str = "") -> set[str] | None:
    """Every key (first four characters of the first word, or the whole first word
    when shorter) a match of ``pattern`` can have; None when that cannot be told.

    Understands the regex subset the lexicons are written in: literals, ``[..]``,
    ``(?:a|b)`` groups, ``?`` and ``{0,n}``; ``\\w``, ``\\d`` and the like give None
    unless four characters are already known.
    """
    if len(prefix) >= _KEY_LENGTH:
        return {prefix[:_KEY_LENGTH]}
    if not pattern or pattern.startswith(r"\s") or pattern[0] in "&'-.":
        return {prefix} if prefix else None  # the first word ends here
    options: list[tuple[str, str]] = []  # (rest of the pattern, prefix so far)
    if pattern.startswith("(?:"):
        end = _group_end(pattern, 0)
        rest, optional = _after_quantifier(pattern[end:])
        options = [(alt + rest, prefix) for alt in _alternatives(pattern[3 : end - 1])]
    elif pattern[0] == "[":
        end = pattern.index("]")
        rest, optional = _after_quantifier(pattern[end + 1 :])
        options = [(char + rest, prefix) for char in pattern[1:end]]
    elif pattern[0].isalnum():
        rest, optional = _after_quantifier(pattern[1:])
        options = [(rest, prefix + pattern[0])]
    else:
        return None
    if optional:
        options.append((rest, prefix))
    return _union(_keys(option, known) for option, known in options)


def _after_quantifier(pattern: str) -> tuple[str, bool]:
    """The pattern after a quantifier at its start, and whether that quantifier allows zero."""
    if pattern.startswith("?"):
        return pattern[1:], True
    if pattern.startswith("{0,"):
        return pattern[pattern.index("}") + 1 :], True
    return pattern, False


def _union(results: Iterable[set[str] | None]) -> set[str] | None:
    found: set[str] = set()
    for result in results:
        if result is None:
            return None
        found |= result
    return found


def _compile(name: str, entries: dict[str, list[str]]) -> _Compiled:
    languages = tuple(entries)
    groups = "|".join("(" + "|".join(entries[language]) + ")" for language in languages)
    # No look-behind in front: a pattern starting with a literal is searched much
    # faster; the word start is checked on each match instead (see _search).
    pattern = re.compile(rf"(?:{groups})(?!\w)")
    return _Compiled(name, SIGNAL_FLOORS[name], pattern, languages)


@cache
def _index() -> _Index:
    """The lexicons compiled and indexed by key; built on first use, not at import."""
    keyed: dict[str, dict[str, dict[str, list[str]]]] = {}
    always: dict[str, dict[str, list[str]]] = {}
    for name, by_language in _LEXICONS.items():
        for language, sources in by_language.items():
            for source in sources:
                entry = _entry(source)
                keys = _keys(entry)
                targets = (
                    [always.setdefault(name, {})]
                    if keys is None
                    else [keyed.setdefault(key, {}).setdefault(name, {}) for key in keys]
                )
                for target in targets:
                    target.setdefault(language, []).append(entry)
    by_key = {
        key: tuple(_compile(name, entries) for name, entries in signals.items())
        for key, signals in keyed.items()
    }
    return _Index(
        by_key=by_key,
        always=tuple(_compile(name, entries) for name, entries in always.items()),
        keys=frozenset(by_key),
        finder=_finder(by_key),
    )


def _finder(keys: Iterable[str]) -> re.Pattern[str]:
    """One pattern matching, at a word start, the key of any word whose key is listed.

    The keys are written as a trie (``(?:a(?:b(?:ge|og)|...)|...)``): the regex engine
    rejects a word after a few character tests, so one ``finditer`` in C finds the
    few words that can start an entry, instead of a Python loop over every word. A
    key shorter than four characters is a whole word, so the word must end after it.
    """

    def node(suffixes: set[str], depth: int) -> str:
        branches: dict[str, set[str]] = {}
        for suffix in suffixes:
            if suffix:
                branches.setdefault(suffix[0], set()).add(suffix[1:])
        options = [
            re.escape(char) + node(rest, depth + 1) for char, rest in sorted(branches.items())
        ]
        if "" in suffixes:
            options.append("" if depth == _KEY_LENGTH else r"(?!\w)")
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    found = set(keys)
    if not found:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile(r"(?<!\w)" + node(found, 0))


def _search(candidate: _Compiled, folded: str) -> re.Match[str] | None:
    for match in candidate.pattern.finditer(folded):
        start = match.start()
        if start == 0 or _WORD_CHAR_RE.match(folded, start - 1) is None:
            return match
    return None


def find_signals(text: str) -> list[Signal]:
    """The signals in ``text`` (subject and body), at most one per name, in a fixed order.

    An empty list means no floor: the model's severity stands.
    """
    folded = fold(text)
    index = _index()
    # Only entries whose key is the key of some word of the text are tried, and only
    # at those words: far cheaper than searching the text with every entry.
    starts_of: dict[str, list[int]] = {}
    for found in index.finder.finditer(folded):
        starts_of.setdefault(found.group(), []).append(found.start())
    # The earliest match of each signal is reported, so the result does not depend
    # on the order in which the keys are tried.
    first: dict[str, tuple[_Compiled, re.Match[str]]] = {}
    for key, starts in starts_of.items():
        for candidate in index.by_key[key]:
            for start in starts:
                match = candidate.pattern.match(folded, start)
                if match is not None:
                    known = first.get(candidate.name)
                    if known is None or match.start() < known[1].start():
                        first[candidate.name] = (candidate, match)
                    break
    for candidate in index.always:
        match = _search(candidate, folded)
        known = first.get(candidate.name)
        if match is not None and (known is None or match.start() < known[1].start()):
            first[candidate.name] = (candidate, match)
    return [_signal(*first[name]) for name in _LEXICONS if name in first]


def _signal(candidate: _Compiled, match: re.Match[str]) -> Signal:
    language = candidate.languages[(match.lastindex or 1) - 1]
    return Signal(candidate.name, candidate.floor, language, " ".join(match.group(0).split()))
