"""kefu core: the engine. It never imports ``api`` or ``plugins``."""

from core.hookspecs import hookimpl

__all__ = ["hookimpl"]
