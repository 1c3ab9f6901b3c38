"""The words of the pages in zh-CN and en, and times as a person reads them.

A page speaks the language chosen with the language switch (a cookie), else the browser's
(``Accept-Language``), else the company's ``locale``; the packs' own labels come in both
languages from the pack (``Label.text(locale)``). The pages' own words are gettext
messages: the English text is the msgid, so English needs no catalogue, and the Chinese
comes from ``locale/zh_CN/LC_MESSAGES/messages.po``, compiled to ``messages.mo`` by
``make setup`` (see "Translating the pages" in docs/web.md). A message missing from the
catalogue shows its English text, never an error; a missing compiled catalogue stops the
server at start-up (:func:`check_catalogues`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

LOCALES = ("zh-CN", "en")
LANG_COOKIE = "kefu_lang"
#: the compiled catalogues: ``<LOCALE_DIR>/<code>/LC_MESSAGES/messages.mo``
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
#: the languages translated by a catalogue, and its directory's name (gettext's spelling);
#: English is the msgids' own language
CATALOGUES = {"zh-CN": "zh_CN"}


class MissingCatalogue(RuntimeError):
    """A language's compiled catalogue (``.mo``) is not there: ``make setup`` compiles it."""


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue where it is written, to be translated later by
    the page that shows it (``t(message)``); returns it unchanged."""
    return message


@functools.cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of ``locale``, read once; none (the English msgids) for
    English and for a language kefu has no catalogue of."""
    code = CATALOGUES.get(locale)
    if code is None:
        return NullTranslations()
    mo = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not mo.is_file():
        raise MissingCatalogue(
            f"the {locale} catalogue of the pages' words is not compiled ({mo} is missing): "
            "run `make setup`, which compiles api/web/locale/*/LC_MESSAGES/messages.po"
        )
    with mo.open("rb") as f:
        return Translations(f, domain=DOMAIN)


def check_catalogues() -> None:
    """Read every language's catalogue: a missing one stops the server when it starts
    (:class:`MissingCatalogue`), not the first page in that language."""
    for locale in LOCALES:
        translations(locale)


def gettext(locale: str, message: str) -> str:
    """``message`` (its English text) in ``locale``."""
    return translations(locale).gettext(message)


def label(value: Any, locale: str) -> str:
    """A pack or config label (``Label``, a ``{"zh-CN": …, "en": …}`` mapping or text)."""
    if value is None:
        return ""
    if hasattr(value, "text"):
        return str(value.text(locale))
    if isinstance(value, Mapping):
        en = value.get("en")
        return str(en if locale == "en" and en else value.get("zh-CN") or en or "")
    return str(value)


def choose(cookie: str | None, accept: str | None, company_locale: str) -> str:
    """The page language: the person's choice (the switch's cookie), else the first of the
    browser's languages (``Accept-Language``) we have, else the company's ``locale``."""
    if cookie in LOCALES:
        return str(cookie)
    for part in (accept or "").split(",")[:10]:
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return company_locale if company_locale in LOCALES else "zh-CN"


def relative(due: dt.datetime | None, now: dt.datetime, locale: str) -> str:
    """``due in 3 h`` / ``overdue by 2 d`` (coarse: the largest unit)."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    span = abs(seconds)
    if span >= 86400:
        n, amount = span // 86400, N_("{n} d")
    elif span >= 3600:
        n, amount = span // 3600, N_("{n} h")
    else:
        n, amount = max(span // 60, 1), N_("{n} min")
    word = gettext(locale, "due in") if seconds >= 0 else gettext(locale, "overdue by")
    return f"{word} {gettext(locale, amount).format(n=n)}"


def local(moment: dt.datetime | str | None, tz: dt.tzinfo) -> str:
    """An instant in the company's time zone, to the minute, with its offset."""
    if not moment:
        return ""
    if isinstance(moment, str):
        try:
            moment = dt.datetime.fromisoformat(moment)
        except ValueError:
            return str(moment)
    if moment.tzinfo is None:  # stored values are UTC; never guess another zone
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %z")


def size(n: int | None) -> str:
    """A file size as a person reads it, in the decimal units packs write limits in
    (``max_size: 10MB`` is 10,000,000 bytes): ``820 B``, ``14 kB``, ``2.5 MB``."""
    if n is None:
        return ""
    if n < 1000:
        return f"{n} B"
    if n < 1000 * 1000:
        return f"{n / 1000:.0f} kB"
    return f"{n / 1000 / 1000:.1f} MB".replace(".0 MB", " MB")


def media(kind: str) -> str:
    """A MIME type as its usual short name: ``image/jpeg`` → ``JPEG``, ``image/*`` →
    ``image``, ``application/pdf`` → ``PDF``."""
    major, _, minor = kind.partition("/")
    if minor == "*":
        return major
    short = {"plain": "TXT", "vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX"}
    short["vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = "XLSX"
    return short.get(minor, minor.upper())
