"""The bundled web pages: staff pages under ``/web`` (:mod:`api.web.pages`), the customer
portal under ``/portal`` (:mod:`api.portal`), their style sheet under ``/static``; wired by
:mod:`api.web.site` (with the error pages of both). A form goes through
:mod:`api.web.submit` (CSRF, files via :mod:`api.web.uploads`, fields via
:mod:`api.web.widgets`, then the case service). Server-rendered (Jinja, autoescaped), no
script needed; see docs/web.md."""
