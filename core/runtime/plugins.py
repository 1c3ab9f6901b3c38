"""Loading plugins from the ``kefu`` entry-point group, naming the one that breaks."""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

import pluggy

from core import hookspecs
from core.spec.definitions import FIELD_KINDS
from core.spec.effects import BUILTIN_EFFECTS
from core.spec.extensions import Extensions, enabled_for

GROUP = "kefu"


class PluginError(Exception):
    """A plugin could not be loaded; the message names it and its package."""


@dataclass
class PluginInfo:
    name: str
    package: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)


def plugin_manager(*, entry_points: bool = True) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """The plugin manager with kefu's hookspecs and (by default) every ``kefu`` entry point."""
    pm = pluggy.PluginManager("kefu")
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    if entry_points:
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist
            package = dist.metadata["Name"] if dist else "?"
            version = dist.version if dist else "?"
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin '{ep.name}' (package {package} {version}): "
                    f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
                ) from exc
            if pm.is_registered(module) or pm.has_plugin(ep.name):
                raise PluginError(f"plugin '{ep.name}' (package {package}) is registered twice")
            pm.register(module, name=ep.name)
            infos.append(PluginInfo(ep.name, package, version, ep.value))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin else "?"
        info = next((i for i in infos if i.name == name), None)
        where = f" (package {info.package} {info.version})" if info else ""
        raise PluginError(f"plugin '{name}'{where}: {exc}") from exc
    for info in infos:
        plugin = pm.get_plugin(info.name)
        info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return pm, infos


# -- the registries plugins fill (built once per process) -----------------------------------


@dataclass
class Registry(Extensions):
    """The installed plugins' contributions, plus their plugin manager and package info."""

    pm: Any = None
    infos: list[PluginInfo] = field(default_factory=list)


def _collect(
    reg: Registry,
    kind: str,
    hook: Any,
    target: dict[str, Any],
    reserved: frozenset[str] | set[str] = frozenset(),
) -> None:
    for impl in hook.get_hookimpls():
        try:
            items: Any = impl.function() or []
        except Exception as exc:
            raise PluginError(
                f"plugin '{impl.plugin_name}': {hook.name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        for item in items:
            name = getattr(item, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin '{impl.plugin_name}': a {kind} from {hook.name} has no name"
                )
            if name in reserved:
                raise PluginError(
                    f"plugin '{impl.plugin_name}': {kind} '{name}' is built into kefu; "
                    "pick another name"
                )
            if name in target:
                raise PluginError(
                    f"{kind} '{name}' is registered by both plugin "
                    f"{_who(reg, reg.owner[(kind, name)])} and plugin {_who(reg, impl.plugin_name)}"
                )
            target[name] = item
            reg.owner[(kind, name)] = impl.plugin_name


def _who(reg: Registry, plugin: str) -> str:
    info = next((i for i in reg.infos if i.name == plugin), None)
    return f"'{plugin}' (package {info.package})" if info else f"'{plugin}'"


def build_registry(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> Registry:
    """Collect every registry from the hooks.

    A duplicate name is a PluginError naming both plugins.
    """
    reg = Registry(
        pm=pm,
        infos=infos,
        hook=pm.hook,
        plugins={i.name: pm.get_plugin(i.name) for i in infos},
    )
    _collect(
        reg,
        "effect type",
        pm.hook.kefu_effect_types,
        reg.effects,
        {e.name for e in BUILTIN_EFFECTS},
    )
    _collect(reg, "field type", pm.hook.kefu_field_types, reg.field_kinds, set(FIELD_KINDS))
    _collect(reg, "dispatch strategy", pm.hook.kefu_dispatch_strategies, reg.strategies)
    _collect(reg, "case-number scheme", pm.hook.kefu_case_number_schemes, reg.schemes)
    _collect(reg, "report", pm.hook.kefu_reports, reg.reports)
    _collect(reg, "notification channel", pm.hook.kefu_notification_channels, reg.channels)
    _collect(reg, "attachment store", pm.hook.kefu_attachment_stores, reg.stores, {"folder"})
    return reg


_INSTALLED: Registry | None = None


def installed() -> Registry:
    """The plugins of this environment (entry-point group ``kefu``), loaded and checked once.

    Raises :class:`PluginError` naming the plugin (and package) that is broken.
    """
    global _INSTALLED
    if _INSTALLED is None:
        pm, infos = plugin_manager()
        reg = build_registry(pm, infos)
        _INSTALLED = reg
    return _INSTALLED


def settings_problems(
    reg: Registry, plugin: str, settings: dict[str, Any]
) -> list[tuple[tuple[Any, ...], str]]:
    """Check a company's settings for ``plugin`` (see :meth:`Extensions.settings_problems`)."""
    return reg.settings_problems(plugin, settings)


def company_settings(company: Any, plugin: str) -> Any:
    """The company's validated settings for ``plugin`` (its ``settings_model``), or ``None``."""
    return installed().company_settings(company, plugin)


__all__ = ["Registry", "enabled_for", "installed", "plugin_manager"]
