"""Names vulture reports as unused that are used, where it cannot see (`make lint`).

vulture reads this file as code that uses each name; nothing imports or runs it. Names
are grouped by why they look unused. Decorated handlers (click commands, pluggy hooks,
Litestar routes, pydantic validators, event listeners, timer handlers) are skipped by
``ignore_decorators`` in pyproject.toml instead.
"""

# ruff: noqa: F821, B018  # vulture's whitelist form: bare names, ``_`` for any object

# -- read by a library by name ------------------------------------------------------------
# msgspec structs: fields of API answers, written out as JSON
direct_roles  # api/auth.py Me
input_schema  # api/models.py FormField
open_roles  # api/models.py ProcedureOut
open_form  # api/models.py ProcedureOut
counted_seconds  # api/models.py DeadlineOut
instance  # api/models.py Problem
current_version  # api/models.py Problem
journal_omitted  # core/cases/records.py RecordDoc, read by record templates
printed_at  # core/cases/records.py RecordDoc, read by record templates
qr  # core/cases/records.py RecordDoc, read by record templates
# pydantic private attributes, read from the model's __pydantic_private__ by their name
_plugin  # core/spec/definitions.py FieldDef.plugin_kind
# Litestar: controller settings, middleware and plugin protocol methods
tags  # api/routes.py controllers
dependencies  # api/routes.py controllers
_.authenticate_request  # api/auth.py authentication middleware
scopes  # api/guard.py GuardMiddleware: the scope types it runs on
# Jinja: the sandbox's hooks for intercepted operators, called by the template code
intercepted_binops  # core/spec/templates.py _BoundedEnvironment
_.call_binop  # core/spec/templates.py _BoundedEnvironment
# pluggy: a hook's argument, passed by keyword to the plugins' implementations
checkpoint  # core/hookspecs.py kefu_audit_checkpoint
_.additional_properties  # api/app.py: an OpenAPI schema attribute, written out
_.receive_router  # api/swagger.py router plugin
# pydantic: keys of the pack and company YAML files (validated, not read by kefu)
description  # RuleDef
form_number  # RecordDef
kefu  # PackDef, CompanyDef: the format version
phone  # PersonDef
skill  # plugins/dispatch.py DispatchArgs
# ruamel.yaml: the constructor hook and class kefu plugs in
_.Constructor  # core/spec/diagnostics.py
_.check_mapping_key  # core/spec/diagnostics.py
# SQLAlchemy TypeDecorator protocol, and the DB-API connection attribute set on connect
cache_ok  # core/storage/schema.py
_.process_bind_param  # core/storage/schema.py
_.process_result_value  # core/storage/schema.py
_.isolation_level  # core/storage/db.py
# Alembic's migrations (core/migrations/versions/, which vulture does not read)
search_documents  # core/migrations/__init__.py
# protocols that document what a plugin provides (used in type hints by plugins)
FieldKind  # core/spec/fields.py
NumberScheme  # core/cases/numbering.py
Report  # core/cases/reports.py

# -- used by tests and benchmarks only (vulture reads core, api and plugins) --------------
_.advance  # core/clock.py TestClock
_.compiled_chunks  # core/rules/durable_runtime.py
_.forget_remembered  # core/cases/service.py, bench/scale_bench.py
_._force_crash  # core/rules/isolation.py fault tests
_._force_hang  # core/rules/isolation.py fault tests
deliver_pending  # core/runtime/outbox.py inline delivery
SYSTEM_FACTS  # core/spec/definitions.py, checked against the docs
_.use_evaluator  # core/cases/service.py
_.verify_journal  # core/cases/service.py

# -- documentation: the measured engine limits, kept beside the margins kefu uses ---------
MEASURED_MAX_PROPERTIES  # core/rules/limits.py
MEASURED_STACK  # core/rules/limits.py
MEASURED_NODE_CHILDREN_HANG  # core/rules/limits.py
MEASURED_NODE_ABSENCE  # core/rules/limits.py
MEASURED_MAX_GROUPS  # core/rules/limits.py

# -- unused today, left for the owners of these modules to use or remove ------------------
last_assigned_at  # core/cases/dispatch.py
created  # core/runtime/bootstrap.py ConfigUser: set, never read
app_from_env  # api/app.py: the uvicorn factory `kefu serve --workers` names as a string

# -- the web pages: read by the Jinja templates, or API for plugins -------------------------
_.cells  # api/web/widgets.py Row: the cells of an editable table's row (templates/widgets.html)
_.removed  # api/web/widgets.py Row: the row's remove box was ticked (templates/widgets.html)
register_widget  # api/web/widgets.py: a plugin gives its field type a widget
