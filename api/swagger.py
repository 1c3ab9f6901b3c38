"""The OpenAPI UI at ``/schema``, served from this machine so it works offline.

Litestar's :class:`~litestar.openapi.plugins.SwaggerRenderPlugin` loads Swagger UI's
JavaScript and CSS from a CDN unless it is given their URLs. Here they point at a
static-files route under the schema path that serves the files of the installed
``swagger-ui-py`` package (a dependency of kefu), and the favicon too: the page asks no
outside host for anything. That package ships Swagger UI 5, which renders the OpenAPI
3.1 document Litestar writes (Swagger UI 4 only takes 3.0).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS = "/swagger-ui"  # under the schema path: /schema/swagger-ui/swagger-ui-bundle.js


def assets_dir() -> Path:
    """The folder of Swagger UI's files in the installed ``swagger-ui-py`` package.

    Found without importing the package (its ``__init__`` looks for web frameworks).
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (pip install -e .)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not (folder / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"no swagger-ui-bundle.js in {folder}: reinstall swagger-ui-py")
    return folder


class LocalSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI with its files served by this app under ``<schema_path>/swagger-ui/``."""

    def __init__(self, *, schema_path: str = "/schema", path: str | Sequence[str] = "/") -> None:
        base = schema_path.rstrip("/") + ASSETS
        super().__init__(
            js_url=f"{base}/swagger-ui-bundle.js",
            css_url=f"{base}/swagger-ui.css",
            standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
            path=path,
        )
        self.folder = assets_dir()  # fails at start-up, not at the first page view

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path=ASSETS,
                directories=[self.folder],
                name="swagger-ui-assets",
                include_in_schema=False,
            )
        )
