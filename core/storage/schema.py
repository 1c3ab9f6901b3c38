"""Database tables (SQLAlchemy Core). Alembic migrations in core/migrations are made from this.

Every row carries its company; every query of the case service filters on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes only; a naive one is a bug and is refused (SQLite has no zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    # SQLite keeps a datetime as the text "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's
    # format, UTC here). Written and read on every change of a case, it is made and read
    # in one call each instead of through the two layers of converters.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # a change of a case writes its one instant into many rows (the case, each journal
        # entry, timer and queue row): the last text made is kept with its instant
        last: list[tuple[Any, str | None]] = [(None, None)]

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            kept = last[0]  # (read once: another thread may replace it, never half of it)
            if kept[0] is value:
                return kept[1]
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
            made = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            last[0] = (value, made)
            return made

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> dt.datetime | None:
            if value is None:
                return None
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)

        return process


Json = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

company = Table(
    "company",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("email", String(200)),
    Column("password_hash", String(300)),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)

membership = Table(
    "membership",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("company_id", ForeignKey("company.id", ondelete="CASCADE"), nullable=False),
    Column("departments", Json, nullable=False),
    Column("roles", Json, nullable=False),
    UniqueConstraint("user_id", "company_id"),
)

procedure_version = Table(
    "procedure_version",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("procedure", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", Json, nullable=False),
    Column("params", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("company_id", "procedure", "version"),
    UniqueConstraint("company_id", "procedure", "digest", name="uq_procedure_version_digest"),
)

case = Table(
    "kefu_case",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("procedure_version_id", ForeignKey("procedure_version.id"), nullable=False),
    Column("procedure", String(64), nullable=False),
    Column("number", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open | closed
    Column("step", String(64), nullable=False),
    Column("fields", Json, nullable=False),
    Column("assignees", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    # the earliest running deadline; the inbox orders by its copy in case_assignee.due_at
    Column("next_due_at", UTCDateTime()),
    UniqueConstraint("company_id", "number", name="uq_case_number"),
    Index("ix_case_company_status_step", "company_id", "status", "step"),
    Index("ix_case_created", "company_id", "created_at", "id"),  # case lists, newest first
    # reports over a period (by last change) and the updated_from/updated_to list filters
    Index("ix_case_updated", "company_id", "updated_at", "id"),
)

#: ``case_assignee.due_at`` of a case with no running deadline: after every real one
NO_DUE = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)

# Who an open case waits on: one row per assignee, none once the case is closed. The
# procedure, the case's next due instant and its opening instant are copied here (kept in
# step by the commit pipeline) so an inbox reads each of its queues — a person, a
# department, a role of one procedure — in due order straight from ix_case_assignee_inbox,
# and "my cases" newest first from ix_case_assignee_mine, however many cases the company
# has: the work is the page size times the number of queues, not the history.
case_assignee = Table(
    "case_assignee",
    metadata,
    Column("case_id", ForeignKey("kefu_case.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("ref", String(64), primary_key=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("procedure", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),  # next_due_at of the case, or NO_DUE
    Column("created_at", UTCDateTime(), nullable=False),  # created_at of the case
    Index("ix_case_assignee_inbox", "company_id", "kind", "ref", "procedure", "due_at", "case_id"),
    Index(
        "ix_case_assignee_mine", "company_id", "kind", "ref", "procedure", "created_at", "case_id"
    ),
)

# How many open cases each queue holds: one row per (kind, ref) that ever held a case,
# moved by ±1 in the commit pipeline's transaction wherever case_assignee gains or loses a
# row, so it always equals the count of that queue's case_assignee rows. Dispatch reads a
# person's load here in one primary-key lookup; counting his case_assignee rows grew with
# his queue (thousands of open cases at a million stored).
assignee_load = Table(
    "assignee_load",
    metadata,
    Column("company_id", ForeignKey("company.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("ref", String(64), primary_key=True),
    Column("open_cases", BigInteger, nullable=False),
)

case_link = Table(
    "case_link",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("from_case_id", ForeignKey("kefu_case.id"), nullable=False),
    Column("to_case_id", ForeignKey("kefu_case.id"), nullable=False),
    Column("link", String(64), nullable=False),
    Column("rule_id", String(128)),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_case_link_from", "company_id", "from_case_id"),  # a case's linked cases
    Index("ix_case_link_to", "company_id", "to_case_id"),  # the cases that opened it
)

journal = Table(
    "journal",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("case_id", ForeignKey("kefu_case.id")),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("action", String(64)),
    Column("rule_id", String(128)),
    Column("procedure_version", Integer),
    Column("data", Json, nullable=False),
    Column("facts", Json),
    # the SHA-256 of the case row the commit left (on its last entry; core.cases.journal)
    Column("state", String(64)),
    # the keyring key the entry's code is made with; NULL: a plain SHA-256 (older entries)
    Column("key_id", String(32)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("company_id", "seq", name="uq_journal_seq"),
    Index("ix_journal_case", "case_id", "seq"),
)

journal_head = Table(
    "journal_head",
    metadata,
    Column("company_id", ForeignKey("company.id"), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id")),
    Column("journal_seq", BigInteger),
    Column("channel", String(32), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("template", String(128), nullable=False),
    Column("payload", Json, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime()),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("lease_owner", String(64)),  # the worker handing it to its channel right now
    Column("lease_until", UTCDateTime()),
    Index("ix_outbox_pending", "status", "next_attempt_at"),
)

#: the timers still to fire, or firing: the only ones ix_timer_due holds. The condition is
#: written out as text, and the worker's queries carry the very same text, because SQLite
#: uses a partial index only for a query holding its condition term for term (a bound
#: parameter does not count)
TIMER_LIVE = "status IN ('pending', 'claimed')"

timer = Table(
    "timer",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id")),
    Column("kind", String(32), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("payload", Json, nullable=False),
    # pending | claimed | done; a cancelled timer is deleted (core.cases.timers)
    Column("status", String(16), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    Column("fired_at", UTCDateTime()),
    # the worker's due timers, earliest first: only the live ones are in it, so a
    # timer cancelled or fired leaves it instead of moving inside it, and it stays as
    # long as the timers waiting, not as the history
    Index(
        "ix_timer_due",
        "due_at",
        "id",
        sqlite_where=text(TIMER_LIVE),
        postgresql_where=text(TIMER_LIVE),
    ),
    # a case's timers, re-planned after each of its changes: without this, cancelling
    # them read every pending timer of every open case
    Index("ix_timer_case", "case_id", "kind", "status"),
)

counter = Table(
    "counter",
    metadata,
    Column("company_id", ForeignKey("company.id"), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# A browser session: the cookie holds a random id, the table only its SHA-256, so a leaked
# database (or backup) does not hand out live sessions.
user_session = Table(
    "user_session",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the cookie's session id
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("company_id", ForeignKey("company.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # absolute end, whatever the activity
    Index("ix_user_session_user", "user_id"),
    Index("ix_user_session_expires", "expires_at"),
)

# Sign-in attempts per client address in the current window (the per-address limit);
# the key is the address as the server saw it.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Index("ix_login_throttle_window", "window_start"),
)

# The customer portal (api/portal.py). A link's token is never stored: the journal entry
# that issued it keeps its SHA-256; a token exchanged for a portal session is recorded here,
# once (the primary key makes a second use fail in any number of server processes).
portal_token_used = Table(
    "portal_token_used",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id"), nullable=False),
    Column("used_at", UTCDateTime(), nullable=False),
)

# A customer's short portal session (the cookie's SHA-256): one case, the actions its link
# allows, a short life.
portal_session = Table(
    "portal_session",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id"), nullable=False),
    Column("actions", Json, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_portal_session_expires", "expires_at"),
)

# Requests counted per key (e.g. "portal-status:<client address>") in a fixed window, in the
# database so that every server process sees the same count.
rate_limit = Table(
    "rate_limit",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", UTCDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
    Index("ix_rate_limit_window", "window_start"),
)

# An API token for an integration, bound to one user in one company; stored hashed.
api_token = Table(
    "api_token",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("company_id", ForeignKey("company.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex of the whole token
    Column("prefix", String(16), nullable=False),  # the first characters, to recognise it in lists
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Index("ix_api_token_company", "company_id", "user_id"),
)


#: tables made by the migrations outside this metadata: the text-search index
#: (``core.cases.search``: an SQLite FTS5 table with its shadow tables, or a PostgreSQL
#: table with a GIN index on an expression)
SEARCH_TABLE = "case_search"


def in_metadata(name: str | None, type_: str, _parents: Any) -> bool:
    """For Alembic's comparison: leave out the search tables this metadata does not hold.

    (Alembic's ``include_name`` hook: the third argument, the parent names, is not needed.)
    """
    if type_ == "table" and name is not None and name.startswith(SEARCH_TABLE):
        return False
    return not (type_ == "index" and name == "ix_case_search_doc")


# An uploaded file: its content lives in the company's attachment store under its SHA-256
# (one copy per company however often it is uploaded); this row says who uploaded it,
# for which field, and — once an action referred to it — which case it belongs to. An
# upload no case claims within the company's ``orphan_hours`` is deleted by the worker.
attachment = Table(
    "attachment",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id")),  # None until an action claims it
    Column("procedure", String(64), nullable=False),
    Column("field", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),  # sniffed from the content
    Column("filename", String(255), nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", UTCDateTime(), nullable=False),
    Index("ix_attachment_case", "company_id", "case_id"),
    Index("ix_attachment_blob", "company_id", "sha256"),
    # the worker's sweep of unclaimed uploads, oldest first
    Index("ix_attachment_unclaimed", "case_id", "uploaded_at"),
)

# A signature on a case (``signatures:`` of its pack): who, in which role, when, and the
# hash of the fields it covers at that moment. Changing one of them voids it (``void_at``,
# journaled); a void signature stays, printed as void.
signature = Table(
    "signature",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("company_id", ForeignKey("company.id"), nullable=False),
    Column("case_id", ForeignKey("kefu_case.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("signed_at", UTCDateTime(), nullable=False),
    Column("fields_hash", String(64), nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    Column("void_at", UTCDateTime()),
    Column("void_reason", Text),
    Index("ix_signature_case", "company_id", "case_id", "name"),
)
