"""Message templates: acknowledgements, notices and reports, per language.

Each template is a Jinja2 file ``<name>.<language>.j2`` with two blocks,
``subject`` and ``body`` (plain text). An optional ``<name>.<language>.html.j2``
with a ``body`` block adds an HTML part. The shipped templates live in
``routing/templates``; an admin's folder (``[templates] folder``) is searched
first, so a file of the same name overrides a shipped one and new languages
can be added. A language without a template falls back to
``fallback_language`` (English).

The environment is sandboxed (admin templates cannot reach Python internals)
and autoescapes HTML templates; plain-text templates are not escaped, since
the customer must see what they wrote. Customer text is only ever *data* in
the context, never template source. Subjects pass :func:`~routing.text.clean_subject`
after rendering, so no line break or control character survives into a header.

This is the one module of :mod:`routing` that reads files (the templates,
lazily, on first use).

Context variables (all templates get ``ref`` and ``subject``; optional ones
default to None or empty):

``acknowledgement``
    customer_name, customer_text, deadline (first response, aware datetime),
    time_zone (the customer's, when known), response_time (timedelta),
    business_hours, signature.
``assignment_notice``
    assignee_name, team, tier, customer_name, customer_email, customer_text,
    category, category_confidence, severity, severity_confidence, signals,
    previous_tickets (mappings: ref, subject, status, opened_at), deadline,
    time_zone (the team's).
``escalation_notice``
    from_tier, to_tier, from_team, to_team, trigger, reason, history (mappings:
    at, text), customer_name, customer_email, customer_text, category,
    severity, deadline, time_zone.
``previous_owner_notice``
    to_tier, to_team, trigger, reason.
``customer_escalation_note``
    customer_name, deadline, time_zone, signature.
``breach_report``
    tier, team, assignee, deadline_kind, deadline, overdue (timedelta), reason,
    history, customer_email, category, severity, time_zone.
``sla_warning``
    deadline_kind, deadline, remaining (timedelta), time_zone, tier, team,
    assignee_name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplatesNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from routing.errors import TemplateError
from routing.text import (
    clean_subject,
    format_by,
    format_datetime,
    format_duration,
    format_percent,
    format_within,
    normalize_language,
    quote_text,
    strip_reply_prefixes,
)

__all__ = [
    "TEMPLATE_NAMES",
    "RenderedMail",
    "check_templates",
    "render",
    "sample_context",
    "sparse_context",
]

TEMPLATE_NAMES: tuple[str, ...] = (
    "acknowledgement",
    "assignment_notice",
    "escalation_notice",
    "previous_owner_notice",
    "customer_escalation_note",
    "breach_report",
    "sla_warning",
    "follow_up_notice",
)
_SUBJECT_LIMIT = 250
# The customer's subject is cut well below the header limit, so the [CMP-…]
# reference after it always survives.
_CUSTOMER_SUBJECT_LIMIT = 150
_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9_]+)\.(?P<lang>[a-z]{2,3})(?P<html>\.html)?\.j2$")
_OPTIONAL: dict[str, Any] = {
    "customer_name": None,
    "customer_email": None,
    "customer_text": "",
    "deadline": None,
    "time_zone": None,
    "response_time": None,
    "business_hours": True,
    "signature": None,
    "assignee_name": None,
    "assignee": None,
    "team": None,
    "tier": None,
    "category": None,
    "category_confidence": None,
    "severity": None,
    "severity_confidence": None,
    "signals": (),
    "previous_tickets": (),
    "history": (),
    "from_tier": None,
    "to_tier": None,
    "from_team": None,
    "to_team": None,
    "trigger": None,
    "reason": None,
    "deadline_kind": None,
    "overdue": None,
    "remaining": None,
    "quote_chars": 400,
}


@dataclass(frozen=True)
class RenderedMail:
    """A rendered message: a safe one-line subject, a text body, maybe an HTML body."""

    subject: str
    text: str
    html: str | None = None
    language: str = "en"
    """The language of the template actually used (after fallback)."""
    template: str = ""
    """The file name of the text template used."""


# ---------------------------------------------------------------- filters


def _lang(context: Context) -> str:
    return str(context.get("lang", "en"))


@pass_context
def _when(context: Context, value: datetime | None, time_zone: str | None = None) -> str:
    if value is None:
        return ""
    return format_datetime(value, _lang(context), time_zone or context.get("time_zone"))


@pass_context
def _by(context: Context, value: datetime | None, time_zone: str | None = None) -> str:
    if value is None:
        return ""
    return format_by(value, _lang(context), time_zone or context.get("time_zone"))


@pass_context
def _within(context: Context, value: timedelta | None, business_hours: bool | None = None) -> str:
    if value is None:
        return ""
    business = context.get("business_hours", True) if business_hours is None else business_hours
    return format_within(value, _lang(context), business_hours=bool(business))


@pass_context
def _duration(context: Context, value: timedelta | None) -> str:
    return "" if value is None else format_duration(value, _lang(context))


@pass_context
def _percent(context: Context, value: float | None) -> str:
    return "" if value is None else format_percent(value, _lang(context))


@pass_context
def _quote(context: Context, value: str | None, limit: int | None = None) -> str:
    chosen = context.get("quote_chars", 400) if limit is None else limit
    return quote_text(value or "", int(chosen))


def _subject_text(value: str | None, limit: int = _CUSTOMER_SUBJECT_LIMIT) -> str:
    return clean_subject(strip_reply_prefixes(value or ""), limit)


def _oneline(value: object) -> str:
    return clean_subject("" if value is None else str(value), 1000)


def _environment_for(folder: Path | None) -> SandboxedEnvironment:
    loaders: list[BaseLoader] = []
    if folder is not None:
        loaders.append(FileSystemLoader(str(folder)))
    loaders.append(PackageLoader("routing", "templates"))
    environment = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        # HTML parts are escaped; plain text must show the customer's "<" as "<".
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "htm.j2"), default_for_string=False, default=False
        ),
        undefined=StrictUndefined,  # a typo in an admin's template fails loudly, not blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process, like the rest of the configuration:
        # checking every file's modification time on each mail is measurable.
        auto_reload=False,
    )
    environment.filters.update(
        when=_when,
        by=_by,
        within=_within,
        duration=_duration,
        percent=_percent,
        quote=_quote,
        subject_text=_subject_text,
        oneline=_oneline,
    )
    return environment


@lru_cache(maxsize=8)
def _environment(folder: str | None) -> SandboxedEnvironment:
    return _environment_for(Path(folder) if folder is not None else None)


@lru_cache(maxsize=512)
def _optional_template(folder: str | None, name: str) -> Template | None:
    """Template ``name``, or None when it does not exist (the answer is kept, like templates)."""
    try:
        return _environment(folder).get_template(name)
    except TemplateNotFound:
        return None


# ---------------------------------------------------------------- rendering


def _block(template: Template, block: str, variables: dict[str, Any]) -> str:
    function = template.blocks.get(block)
    if function is None:
        raise TemplateError(f"has no {{% block {block} %}}")
    return "".join(function(template.new_context(variables)))


def _tidy_body(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)  # at most one blank line in a row
    return "\n".join(tidy).rstrip() + "\n"


def render(
    name: str,
    language: str | None,
    context: Mapping[str, Any],
    *,
    folder: Path | None = None,
    fallback_language: str = "en",
) -> RenderedMail:
    """Render template ``name`` in ``language`` (or the fallback) with ``context``.

    ``folder`` is the admin's template folder, searched before the shipped
    templates. Raises :class:`~routing.errors.TemplateError` when no template
    exists in either language or rendering fails.
    """
    environment = _environment(str(folder) if folder is not None else None)
    wanted = normalize_language(language, fallback_language)
    fallback = normalize_language(fallback_language)
    candidates = [f"{name}.{wanted}.j2"]
    if fallback != wanted:
        candidates.append(f"{name}.{fallback}.j2")
    try:
        template = environment.select_template(candidates)
    except TemplatesNotFound:
        raise TemplateError(f"no template {' or '.join(candidates)}") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    used = _FILE_NAME.match(template.name or "")
    used_language = used["lang"] if used else wanted
    variables = {**_OPTIONAL, **context, "lang": used_language}
    try:
        subject = clean_subject(_block(template, "subject", variables), _SUBJECT_LIMIT)
        text = _tidy_body(_block(template, "body", variables))
        html = None
        html_template = _optional_template(
            str(folder) if folder is not None else None, f"{name}.{used_language}.html.j2"
        )
        if html_template is not None:
            html = _block(html_template, "body", variables).strip() + "\n"
    except (JinjaTemplateError, TemplateError) as exc:
        raise TemplateError(f"{template.name}: {exc}") from None
    except Exception as exc:
        # An admin's template can do arithmetic on a missing value or call a
        # method the sandbox allows: that is a broken template, not a crash.
        raise TemplateError(f"{template.name}: {type(exc).__name__}: {exc}") from None
    return RenderedMail(subject, text, html, used_language, template.name or "")


# ---------------------------------------------------------------- checking


def sample_context(name: str) -> dict[str, Any]:
    """Example values for template ``name`` (previews, ``check-config``, tests)."""
    opened = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    common: dict[str, Any] = {
        "ref": "CMP-000123",
        "subject": "Charged twice for March",
        "customer_name": "Lorraine Whitfield",
        "customer_email": "lorraine@example.org",
        "customer_text": "Hi,\n\nyou have taken £34.99 twice on 2 March.\nPlease refund one.",
        "category": "billing",
        "category_confidence": 0.91,
        "severity": "high",
        "severity_confidence": 0.78,
        "signals": ["repeated_contact"],
        "deadline": opened + timedelta(hours=4),
        "time_zone": "Europe/Berlin",
        "team": "billing",
        "tier": 2,
    }
    specific: dict[str, dict[str, Any]] = {
        "acknowledgement": {"response_time": timedelta(hours=4), "business_hours": True},
        "assignment_notice": {
            "assignee_name": "Felix Braun",
            "previous_tickets": [
                {
                    "ref": "CMP-000042",
                    "subject": "Invoice missing",
                    "status": "resolved",
                    "opened_at": opened - timedelta(days=40),
                },
            ],
        },
        "escalation_notice": {
            "from_tier": 1,
            "to_tier": 2,
            "from_team": "frontline",
            "to_team": "billing",
            "trigger": "deadline",
            "reason": "the first response deadline passed at tier 1",
            "history": [{"at": opened, "text": "opened, assigned to Anna Schmidt"}],
        },
        "previous_owner_notice": {
            "to_tier": 2,
            "to_team": "billing",
            "trigger": "deadline",
            "reason": "the first response deadline passed at tier 1",
        },
        "customer_escalation_note": {},
        "breach_report": {
            "tier": 4,
            "team": "resolution-lead",
            "assignee": "petra@example.com",
            "deadline_kind": "resolution",
            "overdue": timedelta(hours=3, minutes=20),
            "reason": "the resolution deadline passed at tier 4",
            "history": [{"at": opened, "text": "opened"}],
        },
        "follow_up_notice": {"assignee_name": "Felix Braun", "unanswered": 2},
        "sla_warning": {
            "deadline_kind": "first_response",
            "remaining": timedelta(minutes=48),
            "assignee_name": "Felix Braun",
        },
    }
    return {**common, **specific.get(name, {})}


# What real tickets often lack: a sender without a display name, no prediction,
# no deadline, no owner, no history. A template must render for them too.
_SPARSE_VALUES: dict[str, Any] = {
    "subject": "",
    "customer_name": "",
    "category": None,
    "category_confidence": None,
    "severity": None,
    "severity_confidence": None,
    "signals": [],
    "deadline": None,
    "assignee_name": None,
    "assignee": None,
    "previous_tickets": [],
    "history": [],
    "remaining": None,
    "overdue": None,
    "response_time": None,
}


def sparse_context(name: str) -> dict[str, Any]:
    """:func:`sample_context` with every value real tickets may lack taken away."""
    sample = sample_context(name)
    return {**sample, **{key: value for key, value in _SPARSE_VALUES.items() if key in sample}}


def check_templates(folder: Path) -> list[str]:
    """Problems with an admin's template folder, as ``file: what is wrong`` lines.

    Every ``*.j2`` file is compiled and rendered with :func:`sample_context`
    and again with :func:`sparse_context` (no name, unclassified, no deadline);
    text templates need ``subject`` and ``body`` blocks, HTML ones ``body``.
    """
    if not folder.is_dir():
        return [f"{folder}: not a folder"]
    environment = _environment_for(folder)
    problems: list[str] = []
    for path in sorted(folder.glob("*.j2")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            problems.append(
                f"{path.name}: name it <template>.<language>.j2 (e.g. acknowledgement.de.j2)"
            )
            continue
        blocks = ("body",) if match["html"] else ("subject", "body")
        for label, context in (
            ("", sample_context(match["name"])),
            (
                " (for a ticket with no name, no prediction, no deadline)",
                sparse_context(match["name"]),
            ),
        ):
            variables = {**_OPTIONAL, **context, "lang": match["lang"]}
            try:
                template = environment.get_template(path.name)
                for block in blocks:
                    _block(template, block, variables)
            except TemplateSyntaxError as exc:
                problems.append(f"{path.name}:{exc.lineno}: {exc.message}")
                break
            except (JinjaTemplateError, TemplateError) as exc:
                problems.append(f"{path.name}{label}: {exc}")
                break
            except Exception as exc:
                problems.append(f"{path.name}{label}: {type(exc).__name__}: {exc}")
                break
    return problems
