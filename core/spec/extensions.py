"""What plugins contribute, as one object built once at start-up and passed in.

:class:`Extensions` holds the effect types, field types, dispatch strategies, case-number
schemes, reports and notification channels the installed plugins register, which plugin
gave each name, and the plugin hooks that are called later (lifecycle events, pack
folders). :mod:`core.runtime.plugins` builds it from the ``kefu`` entry points; the
loader, the case service, the worker and the API receive it — nothing below the runtime
looks plugins up by itself, so a test can hand any registry to any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.spec.definitions import CompanyDef


@dataclass
class Extensions:
    """The plugins' contributions by kind and name (``Extensions()``: no plugins at all)."""

    effects: dict[str, Any] = field(default_factory=dict)
    field_kinds: dict[str, Any] = field(default_factory=dict)
    strategies: dict[str, Any] = field(default_factory=dict)
    schemes: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, Any] = field(default_factory=dict)
    stores: dict[str, Any] = field(default_factory=dict)  # attachment stores but ``folder``
    owner: dict[tuple[str, str], str] = field(default_factory=dict)
    #: plugin name -> the registered plugin object (module), for its ``settings_model``
    plugins: dict[str, Any] = field(default_factory=dict)
    #: pluggy's hook relay (``hook.kefu_case_opened`` …); None when nothing is registered
    hook: Any = None

    def plugin_of(self, kind: str, name: str) -> str | None:
        """The plugin that registered ``name`` of ``kind`` (``"report"``, …), if any."""
        return self.owner.get((kind, name))

    def validation_context(self) -> dict[str, Any]:
        """The pydantic context under which pack definitions know the plugins' field types."""
        return {"field_kinds": self.field_kinds}

    def hook_impls(self, name: str) -> list[Any]:
        """The implementations of hook ``name`` (empty without plugins)."""
        if self.hook is None:
            return []
        return list(getattr(self.hook, name).get_hookimpls())

    def pack_dirs(self) -> list[Path]:
        """Pack folders the plugins ship (``kefu_pack_dirs``), each with a procedure.yaml."""
        out: list[Path] = []
        for impl in self.hook_impls("kefu_pack_dirs"):
            out.extend(Path(p) for p in impl.function() or [])
        return sorted(p for p in out if (p / "procedure.yaml").is_file())

    def settings_problems(
        self, plugin: str, settings: dict[str, Any]
    ) -> list[tuple[tuple[Any, ...], str]]:
        """Check a company's settings for ``plugin`` against its ``settings_model``.

        A plugin without a ``settings_model`` attribute takes no settings.
        """
        model = getattr(self.plugins.get(plugin), "settings_model", None)
        if model is None:
            return [((), "this plugin takes no settings")] if settings else []
        try:
            model.model_validate(settings)
        except ValidationError as exc:
            return [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        return []

    def company_settings(self, company: CompanyDef, plugin: str) -> Any:
        """The company's validated settings for ``plugin`` (its ``settings_model``), or None."""
        model = getattr(self.plugins.get(plugin), "settings_model", None)
        if model is None:
            return None
        ps = company.plugins.get(plugin)
        return model.model_validate(ps.settings if ps else {})


def enabled_for(company: CompanyDef, plugin: str) -> bool:
    """Whether ``company`` lets ``plugin`` act for it (``plugins: {name: {enabled: false}}``)."""
    ps = company.plugins.get(plugin)
    return ps is None or ps.enabled
