"""Who is calling: browser sessions (cookie) and API tokens (bearer), each in one company.

``build_auth(svc, settings)`` returns the authentication middleware and the auth routes:

- ``POST /api/v1/auth/login`` checks the password (argon2), picks the company (the one
  asked for, or the only one the user belongs to) and starts a session: a **new** random
  id every time, sent as an HttpOnly, SameSite=Lax cookie; the session the request came
  with, if any, is deleted (no session fixation). The database keeps only the id's
  SHA-256. A session ends after ``idle_timeout`` without requests or ``absolute_timeout``
  after login, whichever comes first.
- ``Authorization: Bearer kefu_…`` authenticates an integration with an API token from
  ``kefu token create``; a token is bound to one company and stops working when revoked.
  A request with an ``Authorization`` header never falls back to the cookie.
- ``X-Kefu-Company: <key>`` makes one request act in another company the user belongs
  to (403 if not a member; a token cannot leave its company).

Sign-in attempts are counted in the database *before* the password is checked, each
with one atomic statement, so parallel attempts in every server process share one count:
an account checks at most ``max_failed_logins`` passwords in a row, then is locked for
``lockout`` and answers **423** (``locked``, with ``locked_until``) to every attempt,
the right password included, without checking it; a client address gets
``login_per_address`` failed attempts per ``login_window``, then **429** with
``Retry-After``. Passwords are checked in a small pool of threads of their own
(:class:`PasswordPool`), so a crowd of sign-ins cannot take the CPU from other requests.
A user holds at most ``max_sessions`` sessions (the oldest end). An unknown user and a
wrong password get the same 401 and cost the same argon2 verification. Every time comes
from ``svc.clock``, so tests move it by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.middleware import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
    DefineMiddleware,
)
from litestar.params import JSONBody
from litestar.types import ASGIApp, ControllerRouterHandler
from sqlalchemy import select

from api.guard import Network, client_address, proxy_networks
from api.models import Text, text
from api.problems import errors
from core.cases.service import Actor, CaseService
from core.errors import InvalidInput, KefuError, NotAllowed
from core.runtime import users
from core.storage import schema as t

LOGIN_PATH = "/api/v1/auth/login"
# Litestar matches these with re.findall anywhere in the path, so they are anchored here:
# an unanchored "/health" would also open "/api/v1/cases/health".
EXCLUDE = [f"^{LOGIN_PATH}$", "^/schema(/|$)", "^/health$"]
# last_seen_at is written at most this often: no write per request; a session may end up
# to this much before idle_timeout after the last request.
TOUCH_EVERY = dt.timedelta(minutes=1)
COMPANY_HEADER = "x-kefu-company"


@dataclass(frozen=True)
class AuthSettings:
    """Session and lockout policy; ``from_env()`` reads the ``KEFU_*`` variables."""

    idle_timeout: dt.timedelta = dt.timedelta(minutes=30)
    absolute_timeout: dt.timedelta = dt.timedelta(hours=12)
    max_failed_logins: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    cookie_secure: bool = True
    cookie_name: str = "kefu_session"
    # failed sign-ins from one client address per window, whatever the usernames
    login_per_address: int = 30
    login_window: dt.timedelta = dt.timedelta(minutes=15)
    # sessions one user may hold at once; the oldest end when a new one starts
    max_sessions: int = 10
    # passwords checked at once (argon2 threads), and how many more may wait for them
    hash_threads: int = 1
    hash_queue: int = 8
    # a refused sign-in is answered this much later (the request waits without a thread):
    # a client that retries as soon as it has its answer is slowed to one try per delay
    failure_delay: dt.timedelta = dt.timedelta(seconds=1)
    # origins a browser may write from besides this server's Host (behind a proxy that
    # rewrites Host): "https://kefu.example.com"
    trusted_origins: frozenset[str] = frozenset()
    # reverse proxies whose X-Forwarded-For names the client (api.guard.client_address)
    trusted_proxies: tuple[Network, ...] = ()

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "absolute_timeout", "lockout", "login_window"):
            if getattr(self, name) <= dt.timedelta(0):
                raise ValueError(f"AuthSettings.{name} must be positive")
        for name in ("max_failed_logins", "login_per_address", "max_sessions", "hash_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"AuthSettings.{name} must be at least 1")
        if self.hash_queue < 0 or self.failure_delay < dt.timedelta(0):
            raise ValueError("AuthSettings.hash_queue and failure_delay must not be negative")

    @classmethod
    def from_env(cls, environ: Any = None) -> AuthSettings:
        """Settings from ``KEFU_SESSION_IDLE_MINUTES``, ``KEFU_SESSION_MAX_HOURS``,
        ``KEFU_MAX_FAILED_LOGINS``, ``KEFU_LOCKOUT_MINUTES``, ``KEFU_LOGIN_PER_ADDRESS``,
        ``KEFU_LOGIN_WINDOW_MINUTES``, ``KEFU_MAX_SESSIONS``, ``KEFU_LOGIN_HASH_THREADS``,
        ``KEFU_LOGIN_HASH_QUEUE``, ``KEFU_LOGIN_FAILURE_DELAY`` (seconds),
        ``KEFU_TRUSTED_ORIGINS`` (comma-separated), ``KEFU_TRUSTED_PROXIES`` (addresses or
        CIDR ranges, comma-separated), ``KEFU_COOKIE_SECURE`` (1/0, true/false) and
        ``KEFU_SESSION_COOKIE``; unset ones keep their defaults.
        A malformed value raises ``ValueError`` naming the variable."""
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}

        def number(var: str) -> float | None:
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                return None
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r}: expected a number") from None

        for var, key, unit in (
            ("KEFU_SESSION_IDLE_MINUTES", "idle_timeout", "minutes"),
            ("KEFU_SESSION_MAX_HOURS", "absolute_timeout", "hours"),
            ("KEFU_LOCKOUT_MINUTES", "lockout", "minutes"),
            ("KEFU_LOGIN_WINDOW_MINUTES", "login_window", "minutes"),
            ("KEFU_LOGIN_FAILURE_DELAY", "failure_delay", "seconds"),
        ):
            if (value := number(var)) is not None:
                kw[key] = dt.timedelta(**{unit: value})
        for var, key in (
            ("KEFU_MAX_FAILED_LOGINS", "max_failed_logins"),
            ("KEFU_LOGIN_PER_ADDRESS", "login_per_address"),
            ("KEFU_MAX_SESSIONS", "max_sessions"),
            ("KEFU_LOGIN_HASH_THREADS", "hash_threads"),
            ("KEFU_LOGIN_HASH_QUEUE", "hash_queue"),
        ):
            if (value := number(var)) is not None:
                if value != int(value):
                    raise ValueError(f"{var}={value!r}: expected a whole number")
                kw[key] = int(value)
        if (raw := env.get("KEFU_COOKIE_SECURE")) is not None and raw.strip():
            flag = raw.strip().lower()
            if flag not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"KEFU_COOKIE_SECURE={raw!r}: expected true or false")
            kw["cookie_secure"] = flag in ("1", "true", "yes")
        if (raw := env.get("KEFU_SESSION_COOKIE")) is not None and raw.strip():
            kw["cookie_name"] = raw.strip()
        if (raw := env.get("KEFU_TRUSTED_ORIGINS")) is not None and raw.strip():
            kw["trusted_origins"] = frozenset(o.strip() for o in raw.split(",") if o.strip())
        if (raw := env.get("KEFU_TRUSTED_PROXIES")) is not None and raw.strip():
            kw["trusted_proxies"] = proxy_networks(raw)
        try:
            return cls(**kw)
        except ValueError as exc:
            raise ValueError(f"KEFU_* authentication settings: {exc}") from None


@dataclass(frozen=True)
class Principal:
    """The authenticated caller (``request.user``), acting in exactly one company."""

    user_id: int
    username: str
    company: str
    via: Literal["session", "token"]
    # the membership in ``company`` read with the credential (one read per request);
    # None when the request acts in another company than the session's
    departments: frozenset[str] | None = None
    roles: frozenset[str] | None = None


@dataclass(frozen=True)
class Credential:
    """``request.auth``: which session (its digest) or token (its id) authenticated the request."""

    kind: Literal["session", "token"]
    ref: str


class Unauthenticated(KefuError):
    """No credentials, or bad, expired or revoked ones; a wrong username or password."""

    code = "not-authenticated"
    status = 401


class AccountLocked(Unauthenticated):
    """Too many failed sign-ins in a row: refused (even with the right password, which is
    not even checked) until ``details['locked_until']``; every attempt during the lock
    gets the same answer. 423, not 401, so a person knows waiting helps; it does reveal
    that the username exists, but only after ``max_failed_logins`` guesses."""

    code = "locked"
    status = 423


class TooManyAttempts(KefuError):
    """Too many failed sign-ins from this client address: refused until the window ends."""

    code = "too-many-attempts"
    status = 429


class SignInBusy(KefuError):
    """Every password-checking thread is busy and the queue before them is full."""

    code = "busy"
    status = 503


class PasswordPool:
    """Checks passwords on ``threads`` threads of their own, lowered in CPU priority,
    with at most ``queue`` more checks waiting; beyond that a sign-in is refused at once
    (503, ``Retry-After: 1``).

    argon2 is meant to cost CPU and memory: run on the request threads, a crowd of
    sign-ins (30 threads of wrong passwords) took the CPU from every other request. Here
    it takes at most ``threads`` cores, and (on Linux, where a thread has its own nice
    value) only what the other requests leave.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="kefu-password", initializer=_lower_priority
        )
        self._slots = threading.BoundedSemaphore(threads + queue)

    def reserve(self) -> None:
        """Hold a place for one check (:meth:`verify` gives it back), or refuse at once:
        taken before anything else of a sign-in, so a full pool costs no database work."""
        if not self._slots.acquire(blocking=False):
            raise SignInBusy("too many sign-ins are being checked; try again", retry_after=1)

    def release(self) -> None:
        """Give back a place :meth:`reserve` took when no check follows."""
        self._slots.release()

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password on the pool's threads, in the place :meth:`reserve` took."""
        try:
            future = self._executor.submit(users.verify_password, password_hash, password)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)


def _lower_priority() -> None:
    try:  # Linux: setpriority on a thread id sets that thread's nice value
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # elsewhere the pool's size is the only bound
        pass


# -- request and response bodies -------------------------------------------------------------
class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    """Sign in. ``company`` may be left out when the user belongs to one company only."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    company: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class CompanyRef(msgspec.Struct):
    """A company the user belongs to: ``key`` is what ``company`` and ``X-Kefu-Company`` take."""

    key: str
    name: str


class SignedIn(msgspec.Struct):
    """The answer to a sign-in: who, in which company, and the companies one may switch to."""

    username: str
    display_name: str
    company: str
    companies: list[CompanyRef]


class RoleSource(msgspec.Struct):
    """Why a role is held: ``direct`` (given to the user: ``kefu user add --role`` or the
    person's ``roles`` in the company config), ``department`` (``name``: a department of
    the user that holds the role) or ``person`` (the company config names the user among
    the role's ``people``)."""

    kind: Literal["direct", "department", "person"]
    name: str | None = None


class HeldRole(msgspec.Struct):
    """A role held in a procedure, its label, and every source it comes from."""

    role: str
    label: Text | None
    via: list[RoleSource]


class ProcedureRoles(msgspec.Struct):
    """The roles held in one procedure (a company may give a procedure its own holders)."""

    procedure: str
    roles: list[HeldRole]


class Me(msgspec.Struct):
    """The caller in this request's company: departments, the roles held there (in any of
    its procedures), the roles given directly, and per procedure each role with where it
    comes from."""

    username: str
    display_name: str
    company: str
    companies: list[CompanyRef]
    via: Literal["session", "token"]
    departments: list[str]
    roles: list[str]
    direct_roles: list[str]
    procedures: list[ProcedureRoles]


#: what the problem answers of the sign-in routes mean
_AUTH_WHY = {
    401: (
        "not signed in, or the credentials are bad, expired or revoked; wrong username or password"
    ),
    403: "not a member of the requested company",
    422: "malformed body, or several companies and none chosen (`errors.company`)",
    423: "account locked after too many failed sign-ins (`locked_until` says until when)",
    429: "too many failed sign-ins from this address (`Retry-After` says how long to wait)",
    503: "every password check is busy; try again in a second (`Retry-After`)",
}


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the middleware ------------------------------------------------------------------------
class KefuAuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to a :class:`Principal` or raises :class:`Unauthenticated`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        svc: CaseService,
        settings: AuthSettings,
        exclude: list[str] | None = None,
    ) -> None:
        super().__init__(app, exclude=exclude)
        self.svc = svc
        self.settings = settings

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        authorization = connection.headers.get("authorization")
        company = (connection.headers.get(COMPANY_HEADER) or "").strip() or None
        cookie = connection.cookies.get(self.settings.cookie_name)
        # the database calls block: keep them off the event loop
        principal, credential = await anyio.to_thread.run_sync(
            authenticate, self.svc, self.settings, authorization, cookie, company
        )
        return AuthenticationResult(user=principal, auth=credential)


def authenticate(
    svc: CaseService,
    settings: AuthSettings,
    authorization: str | None,
    cookie: str | None,
    company: str | None,
) -> tuple[Principal, Credential]:
    """Check a request's credentials (blocking); the header wins over the cookie."""
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("use 'Authorization: Bearer kefu_…' with an API token")
        return _by_token(svc, value.strip(), company)
    if cookie:
        return _by_session(svc, settings, cookie, company)
    raise Unauthenticated(f"sign in first (POST {LOGIN_PATH}) or send an API token")


def _by_session(
    svc: CaseService, settings: AuthSettings, raw: str, company: str | None
) -> tuple[Principal, Credential]:
    now = svc.clock.now()
    with svc.db.read() as conn:
        row = users.find_session(conn, raw)
    if row is None:
        raise Unauthenticated("the session has ended or is unknown; sign in again")
    if now >= row.expires_at or now >= row.last_seen_at + settings.idle_timeout:
        with svc.db.write() as conn:
            conn.execute(t.user_session.delete().where(t.user_session.c.id == row.id))
        raise Unauthenticated("the session has expired; sign in again")
    if not row.active:
        raise Unauthenticated("the account is disabled")
    if row.membership_id is None:
        raise Unauthenticated(f"you are no longer a member of '{row.company}'; sign in again")
    if now - row.last_seen_at >= TOUCH_EVERY:
        with svc.db.write() as conn:
            users.touch_session(conn, row.id, now)
    acting = row.company
    if company is not None and company != row.company:
        with svc.db.read() as conn:
            if not any(m.company == company for m in users.memberships(conn, row.user_id)):
                raise NotAllowed(f"you are not a member of company '{company}'")
        acting = company
    held = (
        (frozenset(row.departments or ()), frozenset(row.roles or ()))
        if acting == row.company
        else (None, None)
    )
    return Principal(row.user_id, row.username, acting, "session", *held), Credential(
        "session", row.id
    )


def _by_token(svc: CaseService, raw: str, company: str | None) -> tuple[Principal, Credential]:
    now = svc.clock.now()
    row = None
    if raw.startswith(users.TOKEN_PREFIX) and len(raw) <= 128:
        with svc.db.read() as conn:
            row = users.find_token(conn, raw)
    if row is None:
        raise Unauthenticated("unknown API token")
    if row.revoked_at is not None:
        raise Unauthenticated(
            f"API token {row.id} ({row.prefix}…) was revoked on {_utc(row.revoked_at)}"
        )
    if not row.active:
        raise Unauthenticated("the account is disabled")
    if row.membership_id is None:
        raise Unauthenticated(f"the token's user is no longer a member of '{row.company}'")
    if company is not None and company != row.company:
        raise NotAllowed(f"this API token is bound to company '{row.company}'")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        with svc.db.write() as conn:
            users.touch_token(conn, row.id, now)
    membership = frozenset(row.departments or ()), frozenset(row.roles or ())
    return Principal(row.user_id, row.username, row.company, "token", *membership), Credential(
        "token", str(row.id)
    )


# -- signing in --------------------------------------------------------------------------------
async def login(
    svc: CaseService,
    settings: AuthSettings,
    pool: PasswordPool,
    data: LoginIn,
    old_session: str | None,
    address: str,
) -> tuple[SignedIn, str]:
    """Check the password and start a session; return the answer and the raw session id.

    0. hold a place in the :class:`PasswordPool` (503 at once when it is full);
    1. admit the attempt (one write): the address's count in its window, then the
       account's place in its run of attempts — refused at once (429, 423) past either;
    2. check the password in the :class:`PasswordPool` (a dummy hash for an unknown
       user: the same work and the same 401 as a wrong password);
    3. on success (one write): give the address its attempt back, end the run of
       failures, start the session.
    """
    now = svc.clock.now()
    pool.reserve()
    try:
        user, attempt = await anyio.to_thread.run_sync(_admit, svc, settings, data, address, now)
    except BaseException:
        pool.release()
        raise
    password_hash = user.password_hash if user is not None and user.active else None
    ok = await pool.verify(password_hash, data.password)
    if not ok or user is None:
        if attempt is not None and attempt.locked_until is not None:
            raise _locked(attempt.locked_until)
        raise Unauthenticated("wrong username or password")
    assert attempt is not None  # a known user always takes a place
    return await anyio.to_thread.run_sync(
        _start_session, svc, settings, data, old_session, address, user, attempt, now
    )


def _admit(
    svc: CaseService, settings: AuthSettings, data: LoginIn, address: str, now: dt.datetime
) -> tuple[Any, users.Attempt | None]:
    u = t.app_user
    with svc.db.read() as conn:  # a blocked address is refused without a write
        blocked = users.address_blocked(
            conn, address, now, limit=settings.login_per_address, window=settings.login_window
        )
    if blocked is not None:
        raise _too_many(blocked, now)
    with svc.db.write() as conn:
        blocked = users.claim_address_attempt(
            conn, address, now, limit=settings.login_per_address, window=settings.login_window
        )
        if blocked is not None:
            raise _too_many(blocked, now)
        user = conn.execute(
            select(u.c.id, u.c.username, u.c.display_name, u.c.password_hash, u.c.active).where(
                u.c.username == data.username
            )
        ).first()
        if user is None:
            return None, None
        attempt = users.claim_login_attempt(
            conn, user.id, now, max_failures=settings.max_failed_logins, lockout=settings.lockout
        )
    if isinstance(attempt, dt.datetime):
        raise _locked(attempt)
    return user, attempt


def _too_many(until: dt.datetime, now: dt.datetime) -> TooManyAttempts:
    return TooManyAttempts(
        f"too many failed sign-ins from this address; try again after {_utc(until)}",
        retry_after=max(1, int((until - now).total_seconds())),
    )


def _start_session(
    svc: CaseService,
    settings: AuthSettings,
    data: LoginIn,
    old_session: str | None,
    address: str,
    user: Any,
    attempt: users.Attempt,
    now: dt.datetime,
) -> tuple[SignedIn, str]:
    raw = ""
    with svc.db.write() as conn:
        users.refund_address_attempt(conn, address)
        users.clear_failed_logins(conn, user.id, attempt.n)
        if users.needs_rehash(user.password_hash):
            users.set_password(conn, user.id, data.password)
        mine = users.memberships(conn, user.id)
        chosen, error = _choose_company(mine, data.company)
        if chosen is not None:
            if old_session:
                users.end_session(conn, old_session)
            users.purge_sessions(conn, now, settings.idle_timeout, user_id=user.id)
            users.purge_address_attempts(conn, now, settings.login_window)
            raw = users.create_session(
                conn, user.id, chosen.company_id, now, settings.absolute_timeout
            )
            users.cap_sessions(conn, user.id, settings.max_sessions)
    if error is not None:
        raise error
    return SignedIn(
        user.username,
        user.display_name,
        chosen.company if chosen else "",
        [CompanyRef(m.company, m.company_name) for m in mine],
    ), raw


def _locked(until: dt.datetime) -> AccountLocked:
    return AccountLocked(
        f"the account is locked after too many failed sign-ins until {_utc(until)}",
        locked_until=_utc(until),
    )


def _choose_company(
    mine: list[users.Membership], asked: str | None
) -> tuple[users.Membership | None, KefuError | None]:
    if not mine:
        return None, NotAllowed("you are not a member of any company")
    if asked is not None:
        for m in mine:
            if m.company == asked:
                return m, None
        return None, NotAllowed(f"you are not a member of company '{asked}'")
    if len(mine) == 1:
        return mine[0], None
    keys = ", ".join(m.company for m in mine)
    return None, InvalidInput(
        f"you belong to several companies ({keys}): say which one in 'company'",
        errors={"company": f"required: one of {keys}"},
    )


def me(svc: CaseService, principal: Principal) -> Me:
    """The caller as ``GET /api/v1/me`` shows them (blocking)."""
    u = t.app_user
    with svc.db.read() as conn:
        display_name = conn.execute(
            select(u.c.display_name).where(u.c.id == principal.user_id)
        ).scalar_one()
        mine = users.memberships(conn, principal.user_id)
    here = next((m for m in mine if m.company == principal.company), None)
    if here is None:  # the membership ended during this request
        raise Unauthenticated(f"you are no longer a member of '{principal.company}'; sign in again")
    procedures = held_roles(svc, svc.actor(principal.company, principal.username))
    return Me(
        principal.username,
        display_name,
        principal.company,
        [CompanyRef(m.company, m.company_name) for m in mine],
        principal.via,
        list(here.departments),
        sorted({r.role for p in procedures for r in p.roles}),
        list(here.roles),
        procedures,
    )


def held_roles(svc: CaseService, actor: Actor) -> list[ProcedureRoles]:
    """The roles ``actor`` holds in each procedure of their company, each with its sources.

    The case service decides what is held (``CaseService.holds``); the source of a role
    is found by asking it again for the actor with one thing at a time: only the direct
    roles, only one department, only the name.
    """
    rt = svc.company(actor.company)
    nobody = replace(actor, username="", departments=frozenset(), roles=frozenset())
    probes = [
        (RoleSource("direct"), replace(nobody, roles=actor.roles)),
        *(
            (RoleSource("department", d), replace(nobody, departments=frozenset({d})))
            for d in sorted(actor.departments)
        ),
        (RoleSource("person", actor.username), replace(nobody, username=actor.username)),
    ]
    out = []
    for key, proc in sorted(rt.procedures.items()):
        held = [
            HeldRole(
                role,
                text(proc.pack.roles[role].label),
                [src for src, probe in probes if svc.holds(probe, rt, key, role)],
            )
            for role in sorted(svc.roles_of(actor, rt, proc))
        ]
        out.append(ProcedureRoles(key, held))
    return out


# -- wiring ------------------------------------------------------------------------------------
def build_auth(
    svc: CaseService, settings: AuthSettings, pool: PasswordPool | None = None
) -> tuple[DefineMiddleware, list[ControllerRouterHandler]]:
    """The authentication middleware and the auth routes (login, logout, me) for ``svc``;
    passwords are checked in ``pool`` (one per app: the staff pages sign in through it too)."""

    pool = pool or PasswordPool(settings.hash_threads, settings.hash_queue)

    def session_cookie(value: str, max_age: int) -> Cookie:
        return Cookie(
            key=settings.cookie_name,
            value=value,
            path="/",
            max_age=max_age,
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
        )

    # security=[{}]: OpenAPI's "no credentials needed" (an empty list is dropped by Litestar)
    @post(
        LOGIN_PATH,
        operation_id="login",
        summary="Sign in",
        tags=["auth"],
        status_code=200,
        exclude_from_auth=True,
        security=[{}],
        responses=errors(403, 422, 423, 429, 503, why=_AUTH_WHY),
    )
    async def login_route(
        request: Request[Any, Any, Any], data: JSONBody[LoginIn]
    ) -> Response[SignedIn]:
        """Sign in with username and password; sets the session cookie.

        A new session id is issued at every sign-in and the session the request came with
        ends. `company` may be left out when you belong to one company only.
        """
        address = client_address(request, settings.trusted_proxies)
        try:
            body, raw = await login(
                svc, settings, pool, data, request.cookies.get(settings.cookie_name), address
            )
        except (Unauthenticated, TooManyAttempts, SignInBusy):
            await asyncio.sleep(settings.failure_delay.total_seconds())
            raise
        return Response(
            body, cookies=[session_cookie(raw, int(settings.absolute_timeout.total_seconds()))]
        )

    @post(
        "/api/v1/auth/logout",
        operation_id="logout",
        summary="Sign out",
        tags=["auth"],
        status_code=204,
        sync_to_thread=True,
        responses=errors(why=_AUTH_WHY),
    )
    def logout_route(request: Request[Principal, Credential, Any]) -> Response[None]:
        """End the current session and clear its cookie.

        An API token stays valid: revoke it instead.
        """
        credential = request.auth
        if credential.kind == "session":
            with svc.db.write() as conn:
                conn.execute(t.user_session.delete().where(t.user_session.c.id == credential.ref))
        return Response(None, status_code=204, cookies=[session_cookie("", 0)])

    @get(
        "/api/v1/me",
        operation_id="me",
        summary="Who am I",
        tags=["auth"],
        sync_to_thread=True,
        responses=errors(403, why=_AUTH_WHY),
    )
    def me_route(request: Request[Principal, Credential, Any]) -> Me:
        """Who I am, the company this request acts in, and the others I may act in."""
        return me(svc, request.user)

    middleware = DefineMiddleware(KefuAuthMiddleware, svc=svc, settings=settings, exclude=EXCLUDE)
    return middleware, [login_route, logout_route, me_route]


__all__ = [
    "AccountLocked",
    "AuthSettings",
    "Credential",
    "Principal",
    "Unauthenticated",
    "build_auth",
]
