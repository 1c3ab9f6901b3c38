"""Users, their memberships in companies, and their credentials.

Passwords are hashed with argon2 (the library's default parameters, RFC 9106's low-memory
profile: 64 MiB, 3 passes, 4 lanes). ``KEFU_PASSWORD_HASH=fast``, read at import, selects
the cheapest parameters instead: for test suites only, where every fixture user costs a
hash; never set it where real passwords are stored.

Session ids and API tokens are random secrets of which the database keeps only a SHA-256
digest. Failed sign-ins are counted in the database (one atomic UPDATE each), so every
server process sees the same count.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.storage import schema as t


def _password_hasher(mode: str) -> PasswordHasher:
    """The hasher for ``KEFU_PASSWORD_HASH``: unset or empty is the strong default."""
    if mode == "":
        return PasswordHasher()
    if mode == "fast":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    raise ValueError(f"KEFU_PASSWORD_HASH={mode!r}: leave it unset (or 'fast' in tests only)")


_hasher = _password_hasher(os.environ.get("KEFU_PASSWORD_HASH", ""))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def new_password() -> str:
    return secrets.token_urlsafe(9)


def ensure_user(
    conn: Connection,
    username: str,
    display_name: str,
    now: dt.datetime,
    *,
    email: str | None = None,
    password: str | None = None,
) -> int:
    """Create the user if missing (setting the password only then); return its id."""
    row = conn.execute(select(t.app_user.c.id).where(t.app_user.c.username == username)).first()
    if row is not None:
        if password is not None:
            conn.execute(
                update(t.app_user)
                .where(t.app_user.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
        return int(row.id)
    return int(
        conn.execute(
            insert(t.app_user).values(
                username=username,
                display_name=display_name,
                email=email,
                password_hash=hash_password(password) if password else None,
                active=True,
                failed_logins=0,
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]  # always set after an INSERT
    )


def set_membership(
    conn: Connection,
    user_id: int,
    company_id: int,
    departments: Iterable[str],
    roles: Iterable[str],
) -> None:
    m = t.membership
    deps, rls = sorted(set(departments)), sorted(set(roles))
    existing = conn.execute(
        select(m.c.id).where(m.c.user_id == user_id, m.c.company_id == company_id)
    ).first()
    if existing is None:
        conn.execute(
            insert(m).values(user_id=user_id, company_id=company_id, departments=deps, roles=rls)
        )
    else:
        conn.execute(update(m).where(m.c.id == existing.id).values(departments=deps, roles=rls))


# -- passwords --------------------------------------------------------------------------
@functools.cache
def _dummy_hash() -> str:
    # verified when there is no real hash, so an unknown user costs the same as a wrong password
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no user or no password) checks a dummy and fails."""
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# -- failed logins (counted in the database, so every server process sees the same count) --
@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt the account admitted (:func:`claim_login_attempt`): its place
    ``n`` in the run of attempts since the last success, and ``locked_until`` when this
    attempt is the last one the run may have (a wrong password then leaves the lock on)."""

    n: int
    locked_until: dt.datetime | None


def claim_login_attempt(
    conn: Connection, user_id: int, now: dt.datetime, *, max_failures: int, lockout: dt.timedelta
) -> Attempt | dt.datetime:
    """Take one of the account's ``max_failures`` attempts *before* its password is checked;
    return the :class:`Attempt`, or the ``locked_until`` of a locked account (refuse it
    without checking anything).

    One conditional UPDATE, so parallel attempts (threads or server processes) each get
    a distinct place and at most ``max_failures`` passwords are checked between two
    successes or per lockout: the attempt that takes the last place locks the account
    until ``now + lockout`` at once, and a correct password lifts it
    (:func:`clear_failed_logins`). An expired lock starts a new run at 1.
    """
    u = t.app_user
    expired = and_(u.c.locked_until.is_not(None), u.c.locked_until <= now)
    n = case((expired, 1), else_=u.c.failed_logins + 1)
    until = literal(now + lockout, u.c.locked_until.type)  # typed, so SQLite stores it as UTC too
    row = conn.execute(
        update(u)
        .where(u.c.id == user_id, or_(u.c.locked_until.is_(None), u.c.locked_until <= now))
        .values(failed_logins=n, locked_until=case((n >= max_failures, until), else_=None))
        .returning(u.c.failed_logins, u.c.locked_until)
    ).first()
    if row is None:
        locked = conn.execute(select(u.c.locked_until).where(u.c.id == user_id)).scalar_one()
        return locked if locked is not None else now + lockout
    return Attempt(row.failed_logins, row.locked_until)


def clear_failed_logins(conn: Connection, user_id: int, n: int | None = None) -> None:
    """A correct password in the attempt that took place ``n``: the failures before it
    are forgiven; attempts that took places after it (still being checked) stay counted,
    and a lock one of them set stays until it ends — so a success in the middle of a
    parallel burst gives the burst no new places. ``None`` (a new password set by an
    administrator): everything is cleared."""
    u = t.app_user
    if n is None:
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    else:
        later = u.c.failed_logins > n
        values = {
            "failed_logins": case((later, u.c.failed_logins - n), else_=0),
            "locked_until": case((later, u.c.locked_until), else_=None),
        }
    conn.execute(update(u).where(u.c.id == user_id).values(values))


def claim_address_attempt(
    conn: Connection, key: str, now: dt.datetime, *, limit: int, window: dt.timedelta
) -> dt.datetime | None:
    """Count one sign-in attempt from an address (``key``) in the current ``window``; None
    while within ``limit``, else when the window ends (refuse without checking anything).

    One INSERT … ON CONFLICT DO UPDATE, atomic on SQLite and PostgreSQL. The count is
    taken before the password is checked (parallel attempts cannot all slip under it);
    a correct password gives its attempt back (:func:`refund_address_attempt`), so the
    limit is on failures.
    """
    lt = t.login_throttle
    at = literal(now, lt.c.window_start.type)
    ins = _upsert(conn)(lt).values(key=key, window_start=at, attempts=1)
    stale = lt.c.window_start <= literal(now - window, lt.c.window_start.type)
    row = conn.execute(
        ins.on_conflict_do_update(
            index_elements=[lt.c.key],
            set_={
                "attempts": case((stale, 1), else_=lt.c.attempts + 1),
                "window_start": case((stale, at), else_=lt.c.window_start),
            },
        ).returning(lt.c.attempts, lt.c.window_start)
    ).one()
    if row.attempts > limit:
        return row.window_start + window
    return None


def address_blocked(
    conn: Connection, key: str, now: dt.datetime, *, limit: int, window: dt.timedelta
) -> dt.datetime | None:
    """When the address's window ends if it is past ``limit`` already (a read: a flood
    from a blocked address costs no write), else None."""
    lt = t.login_throttle
    row = conn.execute(select(lt.c.attempts, lt.c.window_start).where(lt.c.key == key)).first()
    if row is None or row.attempts <= limit or row.window_start <= now - window:
        return None
    return row.window_start + window


def refund_address_attempt(conn: Connection, key: str) -> None:
    lt = t.login_throttle
    conn.execute(
        update(lt).where(lt.c.key == key, lt.c.attempts > 0).values(attempts=lt.c.attempts - 1)
    )


def purge_address_attempts(conn: Connection, now: dt.datetime, window: dt.timedelta) -> int:
    """Forget the addresses whose window ended (kept small: one row per recent address)."""
    lt = t.login_throttle
    return conn.execute(delete(lt).where(lt.c.window_start <= now - window)).rowcount


def _upsert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


def set_password(conn: Connection, user_id: int, password: str) -> None:
    conn.execute(
        update(t.app_user)
        .where(t.app_user.c.id == user_id)
        .values(password_hash=hash_password(password))
    )


# -- memberships --------------------------------------------------------------------------
@dataclass(frozen=True)
class Membership:
    """A user's place in one company: its departments and directly given roles."""

    company_id: int
    company: str  # the company's key
    company_name: str
    departments: tuple[str, ...]
    roles: tuple[str, ...]


def memberships(conn: Connection, user_id: int) -> list[Membership]:
    """The companies a user belongs to, ordered by company key."""
    m, c = t.membership, t.company
    rows = conn.execute(
        select(c.c.id, c.c.key, c.c.name, m.c.departments, m.c.roles)
        .join(c, c.c.id == m.c.company_id)
        .where(m.c.user_id == user_id)
        .order_by(c.c.key)
    ).all()
    return [Membership(r.id, r.key, r.name, tuple(r.departments), tuple(r.roles)) for r in rows]


def company_id(conn: Connection, key: str) -> int | None:
    return conn.execute(select(t.company.c.id).where(t.company.c.key == key)).scalar()


# -- secrets: session ids and API tokens -------------------------------------------------
TOKEN_PREFIX = "kefu_"


def secret_digest(secret: str) -> str:
    """What the database keeps of a session id or token: its SHA-256 (hex).

    A plain hash is enough (no salt, no slow hash): the secrets are 256 random bits, not
    guessable passwords, and a fast lookup by hash is what every request needs.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def create_session(
    conn: Connection, user_id: int, company: int, now: dt.datetime, lifetime: dt.timedelta
) -> str:
    """Start a session; return the raw id for the cookie (the table keeps only its digest)."""
    raw = secrets.token_urlsafe(32)
    conn.execute(
        insert(t.user_session).values(
            id=secret_digest(raw),
            user_id=user_id,
            company_id=company,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    return raw


def cap_sessions(conn: Connection, user_id: int, keep: int) -> int:
    """End the user's oldest sessions beyond the newest ``keep``; return how many ended."""
    s = t.user_session
    newest = (
        select(s.c.id)
        .where(s.c.user_id == user_id)
        .order_by(s.c.created_at.desc(), s.c.id)
        .limit(keep)
        .scalar_subquery()
    )
    return conn.execute(delete(s).where(s.c.user_id == user_id, s.c.id.not_in(newest))).rowcount


def end_session(conn: Connection, raw: str) -> None:
    conn.execute(delete(t.user_session).where(t.user_session.c.id == secret_digest(raw)))


def purge_sessions(
    conn: Connection, now: dt.datetime, idle: dt.timedelta, *, user_id: int | None = None
) -> int:
    """Delete the sessions that ended (idle or past their absolute end); return how many."""
    s = t.user_session
    q = delete(s).where(or_(s.c.expires_at <= now, s.c.last_seen_at <= now - idle))
    if user_id is not None:
        q = q.where(s.c.user_id == user_id)
    return conn.execute(q).rowcount


def _credential_query(cred: Any, key: Any) -> Any:
    """A session or token row with its user, company key and membership (one statement,
    built once: it runs on every request)."""
    u, c, m = t.app_user, t.company, t.membership
    return (
        select(
            cred,
            u.c.username,
            u.c.active,
            c.c.key.label("company"),
            m.c.id.label("membership_id"),
            m.c.departments,
            m.c.roles,
        )
        .join(u, u.c.id == cred.c.user_id)
        .join(c, c.c.id == cred.c.company_id)
        .outerjoin(m, and_(m.c.user_id == cred.c.user_id, m.c.company_id == cred.c.company_id))
        .where(key == bindparam("digest"))
    )


_FIND_SESSION = _credential_query(t.user_session, t.user_session.c.id)
_FIND_TOKEN = _credential_query(t.api_token, t.api_token.c.token_hash)


def find_session(conn: Connection, raw: str) -> Any:
    """The session row for a raw id, with its user, company key and whether the membership holds."""
    return conn.execute(_FIND_SESSION, {"digest": secret_digest(raw)}).first()


def touch_session(conn: Connection, digest: str, now: dt.datetime) -> None:
    conn.execute(
        update(t.user_session).where(t.user_session.c.id == digest).values(last_seen_at=now)
    )


def create_token(
    conn: Connection, user_id: int, company: int, name: str, now: dt.datetime
) -> tuple[int, str]:
    """Create an API token; return ``(id, token)``. The token is shown once and stored hashed."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        insert(t.api_token).values(
            user_id=user_id,
            company_id=company,
            name=name,
            token_hash=secret_digest(raw),
            prefix=raw[:12],
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]  # always set after an INSERT
    return int(token_id), raw


def find_token(conn: Connection, raw: str) -> Any:
    """The token row of a raw token, with its user, company key and whether the membership holds."""
    return conn.execute(_FIND_TOKEN, {"digest": secret_digest(raw)}).first()


def touch_token(conn: Connection, token_id: int, now: dt.datetime) -> None:
    conn.execute(update(t.api_token).where(t.api_token.c.id == token_id).values(last_used_at=now))


def list_tokens(conn: Connection, company: int | None = None) -> list[Any]:
    """Every token (revoked ones too), with user name and company key, oldest first."""
    k, u, c = t.api_token, t.app_user, t.company
    q = (
        select(
            k.c.id,
            k.c.name,
            k.c.prefix,
            k.c.created_at,
            k.c.last_used_at,
            k.c.revoked_at,
            u.c.username,
            c.c.key.label("company"),
        )
        .join(u, u.c.id == k.c.user_id)
        .join(c, c.c.id == k.c.company_id)
        .order_by(k.c.id)
    )
    if company is not None:
        q = q.where(k.c.company_id == company)
    return list(conn.execute(q).all())


def revoke_token(conn: Connection, token_id: int, now: dt.datetime) -> bool:
    """Revoke a token; False if there is no such token or it was revoked already."""
    k = t.api_token
    res = conn.execute(
        update(k).where(k.c.id == token_id, k.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return res.rowcount == 1
