"""The Litestar application: routes, authentication, problem details, OpenAPI.

``create_app(svc)`` wires a running :class:`~core.cases.service.CaseService` into an ASGI app.
OpenAPI is served at ``/schema/openapi.json`` with a browsable UI at ``/schema`` (Swagger
UI from an installed package, so it works offline: see :mod:`api.swagger`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from api import documents
from api.auth import AuthSettings, PasswordPool, build_auth
from api.guard import GuardedRequest, GuardMiddleware
from api.problems import HANDLERS
from api.routes import ROUTES, provide_actor
from api.swagger import LocalSwaggerRenderPlugin
from api.web.i18n import check_catalogues
from api.web.site import page_errors, pages_first, template_config, web_routes
from core.cases.service import CaseService
from core.runtime.bootstrap import build_service, freeze_startup_heap
from core.runtime.plugins import installed
from core.spec.catalog import load_catalog
from core.storage.db import Database

MAX_BODY = 1024 * 1024  # 1 MiB: a form is small; attachments come through their own route


def _version() -> str:
    try:
        return version("kefu")
    except PackageNotFoundError:  # running from a source tree
        return "0"


def create_app(
    svc: CaseService,
    *,
    auth: AuthSettings | None = None,
    debug: bool = False,
    extra_routes: list[Any] | None = None,
) -> Litestar:
    check_catalogues()  # the pages' words: a missing catalogue stops the server here
    settings = auth or AuthSettings.from_env()
    pool = PasswordPool(settings.hash_threads, settings.hash_queue)
    middleware, auth_routes = build_auth(svc, settings, pool)
    openapi = OpenAPIConfig(
        title="kefu",
        version=_version(),
        description="Rules-driven case engine for customer-service procedures (客服). "
        "Errors are RFC 9457 problem details.",
        path="/schema",
        render_plugins=[
            LocalSwaggerRenderPlugin(schema_path="/schema", path=["/", "/swagger"]),
            JsonRenderPlugin(path="/openapi.json"),
        ],
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "session": SecurityScheme(
                    type="apiKey",
                    name=settings.cookie_name,
                    security_scheme_in="cookie",
                    description="session cookie from POST /api/v1/auth/login",
                ),
                "token": SecurityScheme(
                    type="http", scheme="bearer", description="API token from `kefu token create`"
                ),
            }
        ),
        security=[{"session": []}, {"token": []}],
        tags=[
            Tag(name="auth"),
            Tag(name="procedures"),
            Tag(name="cases"),
            Tag(name="attachments"),
            Tag(name="records"),
            Tag(name="exports"),
            Tag(name="reports"),
            Tag(name="meta"),
        ],
    )

    page_error = page_errors(svc, settings)
    plugin_routes = [r for result in installed().pm.hook.kefu_api_routes() for r in (result or [])]
    app = Litestar(
        route_handlers=[
            *auth_routes,
            *ROUTES,
            *documents.ROUTES,
            *web_routes(svc, settings, pool),
            *plugin_routes,
            *(extra_routes or []),
        ],
        template_config=template_config(),
        # every route, a plugin's too, may declare these: ``actor`` is the signed-in person
        # in the request's company (the scope everything it shows must stay within)
        dependencies={
            "svc": Provide(lambda: svc, use_cache=True, sync_to_thread=False),
            "actor": Provide(provide_actor, sync_to_thread=True),
        },
        middleware=[GuardMiddleware(settings.trusted_origins), middleware],
        request_class=GuardedRequest,
        # under /web and /portal an error is a page; elsewhere a problem document
        exception_handlers={
            exc: pages_first(handler, page_error) for exc, handler in HANDLERS.items()
        },
        openapi_config=openapi,
        request_max_body_size=MAX_BODY,
        debug=debug,
    )
    app.state.svc = svc
    _closed_bodies(app)
    return app


def _closed_bodies(app: Litestar) -> None:
    """Say in the OpenAPI document what the decoder enforces: a body struct declared with
    ``forbid_unknown_fields`` takes no other keys (``additionalProperties: false``)."""
    schemas = app.openapi_schema.components.schemas or {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            param = handler.parsed_fn_signature.parameters.get("data")
            struct = getattr(param, "type_", None) if param is not None else None
            config = getattr(struct, "__struct_config__", None)
            schema = schemas.get(getattr(struct, "__name__", ""))
            if config is not None and config.forbid_unknown_fields and schema is not None:
                schema.additional_properties = False


def app_from_env() -> Litestar:
    """The app of one server process of ``kefu serve --workers N`` (a uvicorn factory).

    The parent process migrated the database and registered the procedures; each worker
    process builds its own case service on ``KEFU_DATABASE_URL`` without migrating, and
    its auth settings from the environment (``KEFU_COOKIE_SECURE`` …).
    """

    svc = build_service(Database(), load_catalog(extensions=installed()), migrate=False)
    app = create_app(svc)
    freeze_startup_heap()
    return app
