"""The pages' words: every message the templates and the code use is in the catalogue
template and has its Chinese, the compiled catalogue is what the pages show, and the
server does not start without it.

The messages are extracted afresh here with pybabel's own settings (pyproject.toml's
``[tool.babel.*]``, as ``make messages`` runs it), so a new ``t("…")`` fails this test
until ``make messages`` has put it into ``messages.pot`` and it is translated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from click.testing import CliRunner

from api.plugin import serve
from api.portal import link_subject
from api.web import i18n
from core.spec.definitions import Label

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "api" / "web" / "locale"
POT = LOCALE / "messages.pot"
ZH_PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "messages.po"
FIELD = re.compile(r"\{(\w*)\}")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The messages of the sources as they are now."""
    out = tmp_path_factory.mktemp("messages") / "messages.pot"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # pybabel reads pyproject.toml, and the paths in it, from here
        CommandLineInterface().run(["pybabel", "-q", "extract", "--output-file", str(out)])
    with out.open("rb") as f:
        return read_po(f)


def read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def where(m: Message) -> str:
    return " ".join(f"{file}:{line}" for file, line in m.locations)


def used(catalog: Catalog) -> Iterator[Message]:
    return (m for m in catalog if m.id)


def test_the_catalogue_template_has_every_message_of_the_sources(extracted: Catalog) -> None:
    committed = read(POT)
    new = [f"{where(m)}: {m.id!r}" for m in used(extracted) if m.id not in committed]
    assert new == [], (
        "messages not in api/web/locale/messages.pot; run `make messages` and translate "
        "them in api/web/locale/zh_CN/LC_MESSAGES/messages.po:\n" + "\n".join(new)
    )
    gone = [repr(m.id) for m in used(committed) if m.id not in extracted]
    assert gone == [], (
        "api/web/locale/messages.pot has messages no source uses any more; run "
        "`make messages`:\n" + "\n".join(gone)
    )


def test_every_message_has_its_chinese(extracted: Catalog) -> None:
    zh = read(ZH_PO)
    missing = []
    for m in used(extracted):
        t = zh.get(m.id)
        if t is None or not t.string:
            missing.append(f"{where(m)}: {m.id!r} has no translation")
        elif t.fuzzy:
            missing.append(f"{where(m)}: {m.id!r} is fuzzy (check it, remove the mark)")
        elif set(FIELD.findall(str(m.id))) != set(FIELD.findall(str(t.string))):
            missing.append(f"{where(m)}: {m.id!r} → {t.string!r}: not the same {{fields}}")
    assert missing == [], "in api/web/locale/zh_CN/LC_MESSAGES/messages.po:\n" + "\n".join(missing)


def test_the_pages_show_the_compiled_translations() -> None:
    """Every translation in messages.po is what a zh-CN page shows (a .po changed since
    it was compiled fails here: `make setup` compiles it again); English shows the msgid."""
    stale = []
    for m in used(read(ZH_PO)):
        shown = i18n.gettext("zh-CN", str(m.id))
        if shown != m.string:
            stale.append(f"{m.id!r}: the page shows {shown!r}, messages.po has {m.string!r}")
        assert i18n.gettext("en", str(m.id)) == m.id
    assert stale == [], "messages.mo is not messages.po's; run `make setup`:\n" + "\n".join(stale)
    assert i18n.gettext("zh-CN", "Sign in") == "登录"
    assert i18n.gettext("zh-CN", "a message no catalogue has") == "a message no catalogue has"


@pytest.mark.parametrize(
    ("locale", "hours", "shown"),
    [
        ("en", 3, "due in 3 h"),
        ("zh-CN", 3, "剩余 3小时"),
        ("en", -50, "overdue by 2 d"),
        ("zh-CN", -50, "已超期 2天"),
        ("zh-CN", 0.1, "剩余 6分钟"),
    ],
)
def test_a_deadline_reads_in_the_page_language(locale: str, hours: float, shown: str) -> None:
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert i18n.relative(now + dt.timedelta(hours=hours), now, locale) == shown


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        ("zh-CN", ["BX-7:请确认处理结果", "BX-7:请确认是否同意维修报价"]),
        ("en", ["BX-7: please confirm", "BX-7: accept or decline the quote"]),
    ],
)
def test_a_links_subject_reads_in_the_companys_language(locale: str, shown: list[str]) -> None:
    quote = Label(zh_CN="请确认是否同意维修报价", en="accept or decline the quote")
    assert [link_subject("BX-7", None, locale), link_subject("BX-7", quote, locale)] == shown


def test_the_language_is_the_persons_then_the_browsers_then_the_companys() -> None:
    assert i18n.choose("en", "zh-CN,zh;q=0.9", "zh-CN") == "en"
    assert i18n.choose(None, "fr-FR, en-GB;q=0.8", "zh-CN") == "en"
    assert i18n.choose("xx", "fr-FR", "en") == "en"
    assert i18n.choose(None, None, "fr") == "zh-CN"


@pytest.fixture
def no_compiled_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    yield
    i18n.translations.cache_clear()


@pytest.mark.usefixtures("no_compiled_catalogue")
def test_the_server_does_not_start_without_the_compiled_catalogue() -> None:
    result = CliRunner().invoke(serve, ["--port", "1"])
    assert result.exit_code == 1, result.output
    assert "zh-CN catalogue" in result.output
    assert "run `make setup`" in result.output
    with pytest.raises(i18n.MissingCatalogue, match="make setup"):
        i18n.gettext("zh-CN", "Sign in")
    assert i18n.gettext("en", "Sign in") == "Sign in"
