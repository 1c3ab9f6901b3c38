"""Loading plugins from the ``kefu`` entry-point group, naming the one that breaks."""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

import pluggy

from core import hookspecs

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
                raise PluginError(f"plugin '{ep.name}' (package {package} {version}): "
                                  f"cannot load {ep.value}: {type(exc).__name__}: {exc}") from exc
            if pm.is_registered(module) or pm.has_plugin(ep.name):
                raise PluginError(f"plugin '{ep.name}' (package {package}) is registered twice")
            pm.register(module, name=ep.name)
            infos.append(PluginInfo(ep.name, package, version, ep.value))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin else "?"
        raise PluginError(f"plugin '{name}': {exc}") from exc
    for info in infos:
        plugin = pm.get_plugin(info.name)
        info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return pm, infos


def notification_channels(pm: pluggy.PluginManager) -> dict[str, Any]:
    """``{name: Channel}`` from every plugin's ``kefu_notification_channels``; duplicates fail."""
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for impl in pm.hook.kefu_notification_channels.get_hookimpls():
        channels: Any = impl.function() or []
        for channel in channels:
            name = getattr(channel, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin '{impl.plugin_name}': a notification channel has no name")
            if name in out:
                raise PluginError(f"notification channel '{name}' is registered by both plugin "
                                  f"'{owner[name]}' and plugin '{impl.plugin_name}'")
            out[name], owner[name] = channel, impl.plugin_name
    return out
