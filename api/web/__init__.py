"""The bundled web pages: staff pages under ``/web`` (:mod:`api.web.pages`), the customer
portal under ``/portal`` (:mod:`api.portal`), their style sheet under ``/static``; wired by
:mod:`api.web.site`. Server-rendered (Jinja, autoescaped), no script needed; see
docs/web.md."""
