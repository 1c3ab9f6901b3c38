"""The procedure packs in ``rules/`` and the company configs in ``config/``, loaded together."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.spec.diagnostics import Diagnostic, Diagnostics
from core.spec.effects import EffectType
from core.spec.extensions import Extensions
from core.spec.loading import LoadedCompany, LoadedPack, effect_registry, load_company, load_pack

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Catalog:
    """Every loaded pack and company config, their problems, and the plugins they used."""

    packs: dict[str, LoadedPack] = field(default_factory=dict)
    companies: dict[str, LoadedCompany] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    effects: dict[str, EffectType] = field(default_factory=dict)
    extensions: Extensions = field(default_factory=Extensions)


def pack_dirs(rules_dir: Path) -> list[Path]:
    return sorted(p.parent for p in rules_dir.glob("*/procedure.yaml"))


def rules_dir_default() -> Path:
    return Path(os.environ.get("KEFU_RULES_DIR") or ROOT / "rules")


def config_dir_default() -> Path:
    return Path(os.environ.get("KEFU_CONFIG_DIR") or ROOT / "config")


def load_catalog(
    rules_dir: Path | None = None,
    config_dir: Path | None = None,
    extra_effects: Iterable[EffectType] = (),
    display_root: Path | None = None,
    *,
    extensions: Extensions,
) -> Catalog:
    """Load every pack and every company config; problems go to ``catalog.diagnostics``.

    Defaults: ``KEFU_RULES_DIR`` / ``KEFU_CONFIG_DIR`` if set, else ``rules/`` and ``config/``
    of this checkout. ``extensions`` are the installed plugins
    (``core.runtime.plugins.installed()``; ``Extensions()`` for none).
    """
    rules_dir = rules_dir or rules_dir_default()
    config_dir = config_dir or config_dir_default()
    effects = effect_registry(extensions, extra_effects)
    cat = Catalog(effects=effects, extensions=extensions)
    local = pack_dirs(rules_dir)
    for d in [
        *extensions.pack_dirs(),
        *local,
    ]:  # a pack of rules/ replaces a plugin's of the same key
        lp, diags = load_pack(d, effects, display_root, extensions=extensions)
        cat.diagnostics.extend(diags)
        if lp is not None:
            cat.packs[lp.key] = lp
    for f in sorted(config_dir.glob("*.yaml")):
        lc, diags = load_company(f, cat.packs, effects, display_root, extensions=extensions)
        cat.diagnostics.extend(diags)
        if lc is not None:
            cat.companies[lc.key] = lc
    cat.diagnostics.extend(_shared_usernames(cat.companies.values()))
    return cat


def _shared_usernames(companies: Iterable[LoadedCompany]) -> list[Diagnostic]:
    """K143: a username that two company files give to people of different names.

    A username is one login: ``kefu init --demo`` makes one user of it, a member of every
    company that lists it. That is right for a person working for two companies, and
    wrong for two people who happen to share a surname, who would share one password."""
    seen: dict[str, tuple[str, str]] = {}  # username -> (company, display name)
    out: list[Diagnostic] = []
    for lc in companies:
        for username, person in lc.company.people.items():
            first = seen.setdefault(username, (lc.key, person.name))
            if first[0] != lc.key and first[1] != person.name:
                out.append(
                    lc.doc.diag(
                        ("people", username),
                        "K143",
                        f"person '{username}' ({person.name}) has the username of "
                        f"{first[0]}'s '{username}' ({first[1]}): one login would hold both",
                        "give one of them another username; keep one username only for "
                        "the same person working for both companies",
                        key=True,
                        severity="warning",
                    )
                )
    return out
