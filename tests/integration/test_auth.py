"""Sign-in, sessions, API tokens, lockout and company choice, on SQLite and PostgreSQL.

Two companies (tests/fixtures/config-two): "wang" belongs to demo and acme, "li" to demo
only, "sun" to acme only. Time comes from the service's TestClock; nothing patches time.
The clients talk https, so the default Secure cookie is sent back as a browser would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click
import pytest
from click.testing import CliRunner
from litestar import Litestar, Request, get
from litestar.testing import TestClient
from sqlalchemy import select, update

from api.app import create_app
from api.auth import AuthSettings, Principal
from api.auth_cli import register
from api.plugin import serve_auth_settings
from core.cases.service import CaseService
from core.runtime import users
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import FIXTURES, PASSWORD, service

pytestmark = pytest.mark.service(config=FIXTURES / "config-two", logins=["wang", "li", "sun"])
SETTINGS = AuthSettings(
    max_failed_logins=3, lockout=dt.timedelta(minutes=15), failure_delay=dt.timedelta(0)
)
WHOAMI = "/api/v1/test/whoami"


@get(WHOAMI, sync_to_thread=False)
def whoami(request: Request[Principal, Any, Any]) -> dict[str, Any]:
    """A protected route that shows who the middleware says is calling."""
    who = dataclasses.asdict(request.user)
    return {k: who[k] for k in ("user_id", "username", "company", "via")}


@get("/api/v1/test/health", sync_to_thread=False)
def not_the_health_route() -> dict[str, str]:
    """Protected although its path contains "/health" (the exclusions are anchored)."""
    return {"status": "secret"}


def build_app(svc: CaseService, settings: AuthSettings = SETTINGS) -> Litestar:
    return create_app(svc, auth=settings, extra_routes=[whoami, not_the_health_route])


Client = Callable[..., TestClient[Any]]


@pytest.fixture
def client(svc: CaseService) -> Iterator[Client]:
    """``client(app=None)``: a fresh https client (own cookie jar) on ``app`` or the default app."""
    default = build_app(svc)

    def make(app: Litestar | None = None) -> TestClient[Any]:
        # not entered: the app's lifespan is not needed, and several clients entering it
        # on one app hang on exit (Litestar's logging queue listener)
        return TestClient(app or default, base_url="https://testserver.local")

    yield make


def login(
    c: TestClient[Any], user: str, password: str = PASSWORD, company: str | None = None
) -> Any:
    body = {"username": user, "password": password}
    if company is not None:
        body["company"] = company
    return c.post("/api/v1/auth/login", json=body)


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"urn:kefu:problem:{code}" and body["status"] == status, body
    return dict(body)


def session_rows(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(t.user_session)).all())


def user_row(db: Database, name: str) -> Any:
    with db.read() as conn:
        return conn.execute(select(t.app_user).where(t.app_user.c.username == name)).one()


# -- signing in ---------------------------------------------------------------------------


def test_login_sets_a_hardened_cookie_and_keeps_only_its_digest(
    client: Client, db: Database
) -> None:
    c = client()
    r = login(c, "li")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "username": "li",
        "display_name": "李强 (电器维修)",
        "company": "demo",
        "companies": [{"key": "demo", "name": "示例客服有限公司"}],
    }
    cookie = r.headers["set-cookie"]
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert cookie.startswith("kefu_session=")
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= set(attrs), cookie
    assert attrs["path"] == "Path=/" and attrs["samesite"].lower() == "samesite=lax"
    assert attrs["max-age"] == "Max-Age=43200"  # the absolute timeout, 12 h
    raw = c.cookies["kefu_session"]
    assert len(raw) >= 40
    [row] = session_rows(db)
    assert row.id == hashlib.sha256(raw.encode()).hexdigest() and raw not in row.id
    assert row.expires_at - row.created_at == dt.timedelta(hours=12)

    assert c.get(WHOAMI).json() == {
        "user_id": row.user_id,
        "username": "li",
        "company": "demo",
        "via": "session",
    }
    me = c.get("/api/v1/me").json()
    assert me["via"] == "session" and me["company"] == "demo" and me["departments"] == ["field"]


def test_cookie_without_secure_when_configured(svc: CaseService, client: Client) -> None:
    c = client(
        build_app(svc, dataclasses.replace(SETTINGS, cookie_secure=False, cookie_name="sid"))
    )
    r = login(c, "li")
    assert r.status_code == 200 and r.headers["set-cookie"].startswith("sid=")
    assert "secure" not in r.headers["set-cookie"].lower()


@pytest.mark.slow  # measures production-strength hashing
def test_wrong_password_and_unknown_user_get_the_same_answer_and_the_same_work(
    strong_passwords: None, client: Client, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.write() as conn:  # wang's hash made with the production parameters
        users.set_password(conn, user_row(db, "wang").id, PASSWORD)
    assert user_row(db, "wang").password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    c = client()
    wrong = problem(login(c, "li", "nope"), 401, "not-authenticated")
    unknown = problem(login(c, "nobody-at-all", "nope"), 401, "not-authenticated")
    no_password = problem(
        login(c, "chen", PASSWORD), 401, "not-authenticated"
    )  # a config person, no password
    assert (
        wrong["detail"]
        == unknown["detail"]
        == no_password["detail"]
        == "wrong username or password"
    )
    assert c.cookies.get("kefu_session") is None and not session_rows(db)

    # both verify an argon2 hash with the production parameters (a dummy one for the
    # unknown user): the same work, so the same time. Counted, not timed: the hashing
    # threads run at the lowest priority, so their times follow the machine's other load.
    verified: list[str] = []
    hasher = users._hasher

    class Counting:
        def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password_hash.rsplit("$", 2)[0])  # algorithm and parameters
            return hasher.verify(password_hash, password)

    monkeypatch.setattr(users, "_hasher", Counting())
    problem(login(c, "wang", "nope"), 401, "not-authenticated")
    problem(login(c, "ghost", "nope"), 401, "not-authenticated")
    assert len(verified) == 2 and verified[0] == verified[1], verified
    assert verified[0] == "$argon2id$v=19$m=65536,t=3,p=4"


def test_login_body_is_validated(client: Client) -> None:
    c = client()
    problem(c.post("/api/v1/auth/login", json={"username": "li"}), 422, "malformed-request")
    problem(
        c.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD, "admin": True}),
        422,
        "malformed-request",
    )


def test_login_rotates_the_session_id_and_the_old_one_dies(client: Client, db: Database) -> None:
    c = client()
    # a session id planted by someone else (fixation) is never adopted
    c.cookies.set("kefu_session", "planted-by-attacker", domain="testserver.local")
    assert login(c, "li").status_code == 200
    first = c.cookies["kefu_session"]
    assert first != "planted-by-attacker"

    assert login(c, "li").status_code == 200
    second = c.cookies["kefu_session"]
    assert second != first
    assert len(session_rows(db)) == 1  # the first session was deleted, not left to expire

    other = client()
    other.cookies.set("kefu_session", first, domain="testserver.local")
    problem(other.get(WHOAMI), 401, "not-authenticated")
    other.cookies.set("kefu_session", second, domain="testserver.local")
    assert other.get(WHOAMI).status_code == 200


def test_logout_ends_the_session_and_clears_the_cookie(client: Client, db: Database) -> None:
    c = client()
    login(c, "li")
    raw = c.cookies["kefu_session"]
    r = c.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert "max-age=0" in r.headers["set-cookie"].lower()
    assert c.cookies.get("kefu_session") is None and not session_rows(db)
    replay = client()
    replay.cookies.set("kefu_session", raw, domain="testserver.local")
    problem(replay.get(WHOAMI), 401, "not-authenticated")
    problem(replay.post("/api/v1/auth/logout"), 401, "not-authenticated")


def test_no_credentials_and_garbage_are_401_and_exclusions_are_exact(client: Client) -> None:
    c = client()
    assert "sign in first" in problem(c.get(WHOAMI), 401, "not-authenticated")["detail"]
    problem(c.get("/api/v1/me"), 401, "not-authenticated")
    problem(c.get("/api/v1/test/health"), 401, "not-authenticated")
    problem(c.get(WHOAMI, headers={"Authorization": "Basic bGk6cHc="}), 401, "not-authenticated")
    problem(
        c.get(WHOAMI, headers={"Authorization": "Bearer kefu_" + "x" * 43}),
        401,
        "not-authenticated",
    )
    problem(
        c.get(WHOAMI, headers={"Authorization": "Bearer " + "y" * 5000}), 401, "not-authenticated"
    )
    c.cookies.set("kefu_session", "x" * 4000, domain="testserver.local")
    problem(c.get(WHOAMI), 401, "not-authenticated")
    assert c.get("/health").status_code == 200
    assert c.get("/schema/openapi.json").status_code == 200


# -- expiry ---------------------------------------------------------------------------------


def test_idle_sessions_expire(svc: CaseService, client: Client, db: Database) -> None:
    clock = svc.clock
    c = client()
    login(c, "li")
    for _ in range(3):  # activity keeps it alive well past one idle period
        clock.advance(dt.timedelta(minutes=29))
        assert c.get(WHOAMI).status_code == 200
    clock.advance(dt.timedelta(minutes=30))
    assert "expired" in problem(c.get(WHOAMI), 401, "not-authenticated")["detail"]
    assert not session_rows(db)


def test_sessions_end_at_the_absolute_timeout_whatever_the_activity(
    svc: CaseService, client: Client
) -> None:
    clock = svc.clock
    c = client()
    login(c, "li")
    for _ in range(35):  # 11 h 40 min of steady use
        clock.advance(dt.timedelta(minutes=20))
        assert c.get(WHOAMI).status_code == 200
    clock.advance(dt.timedelta(minutes=19, seconds=59))
    assert c.get(WHOAMI).status_code == 200
    clock.advance(dt.timedelta(seconds=1))  # 12 h after login
    problem(c.get(WHOAMI), 401, "not-authenticated")


def test_last_seen_is_written_at_most_once_a_minute(
    svc: CaseService, client: Client, db: Database
) -> None:
    c = client()
    login(c, "li")
    start = svc.clock.now()
    svc.clock.advance(dt.timedelta(seconds=59))
    assert c.get(WHOAMI).status_code == 200
    assert session_rows(db)[0].last_seen_at == start
    svc.clock.advance(dt.timedelta(seconds=1))
    assert c.get(WHOAMI).status_code == 200
    assert session_rows(db)[0].last_seen_at == start + dt.timedelta(minutes=1)


def test_a_disabled_user_or_ended_membership_ends_the_session(
    svc: CaseService, client: Client, db: Database
) -> None:
    c, d = client(), client()
    login(c, "li")
    login(d, "sun")
    with db.write() as conn:
        conn.execute(update(t.app_user).where(t.app_user.c.username == "li").values(active=False))
        conn.execute(t.membership.delete().where(t.membership.c.user_id == user_row(db, "sun").id))
    problem(c.get(WHOAMI), 401, "not-authenticated")
    problem(d.get(WHOAMI), 401, "not-authenticated")
    problem(login(client(), "li"), 401, "not-authenticated")  # disabled: like an unknown user


# -- API tokens -------------------------------------------------------------------------------


def test_api_tokens_work_in_their_company_until_revoked(
    svc: CaseService, client: Client, db: Database
) -> None:
    with db.write() as conn:
        token_id, raw = users.create_token(
            conn, user_row(db, "wang").id, svc.company("acme").id, "erp", svc.clock.now()
        )
    assert raw.startswith("kefu_")
    with db.read() as conn:
        row = conn.execute(select(t.api_token)).one()
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest() and raw not in row.token_hash
    assert raw.startswith(row.prefix) and len(row.prefix) < 16

    c = client()
    bearer = {"Authorization": f"Bearer {raw}"}
    r = c.get(WHOAMI, headers=bearer)
    assert r.json() == {
        "user_id": row.user_id,
        "username": "wang",
        "company": "acme",
        "via": "token",
    }
    assert c.get("/api/v1/me", headers=bearer).json()["via"] == "token"
    assert c.get(WHOAMI, headers={**bearer, "X-Kefu-Company": "acme"}).status_code == 200
    problem(c.get(WHOAMI, headers={**bearer, "X-Kefu-Company": "demo"}), 403, "not-allowed")
    with db.read() as conn:
        assert conn.execute(select(t.api_token.c.last_used_at)).scalar() == svc.clock.now()
    assert c.post("/api/v1/auth/logout", headers=bearer).status_code == 204  # no session to end
    assert c.get(WHOAMI, headers=bearer).status_code == 200

    # a bad token never falls back to a good session cookie
    login(c, "li")
    assert c.get(WHOAMI).json()["username"] == "li"
    problem(c.get(WHOAMI, headers={"Authorization": "Bearer kefu_wrong"}), 401, "not-authenticated")

    with db.write() as conn:
        assert users.revoke_token(conn, token_id, svc.clock.now())
        assert not users.revoke_token(conn, token_id, svc.clock.now())
    assert (
        "revoked"
        in problem(client().get(WHOAMI, headers=bearer), 401, "not-authenticated")["detail"]
    )


# -- lockout ----------------------------------------------------------------------------------


def test_lockout_is_counted_in_the_database_across_app_instances(
    svc: CaseService, client: Client, db: Database
) -> None:
    # a second service with its own engine and its own app: another process, as far as
    # anything in memory goes; the clock is shared so both see the same time
    db2 = Database(db.url)
    svc2 = service(db2, config=FIXTURES / "config-two", clock=svc.clock)
    try:
        a, b = client(build_app(svc)), client(build_app(svc2))
        problem(login(a, "wang", "bad", "demo"), 401, "not-authenticated")
        problem(login(b, "wang", "bad", "demo"), 401, "not-authenticated")
        assert user_row(db, "wang").failed_logins == 2
        locked = problem(login(a, "wang", "bad", "demo"), 423, "locked")  # the 3rd failure locks
        assert "locked" in locked["detail"] and locked["locked_until"] == "2026-11-02T01:15:00Z"
        # even the right password is refused during the lock, by either instance
        assert (
            "2026-11-02T01:15:00Z"
            in problem(login(b, "wang", PASSWORD, "demo"), 423, "locked")["detail"]
        )
        problem(login(a, "wang", PASSWORD, "demo"), 423, "locked")
        svc.clock.advance(dt.timedelta(minutes=14, seconds=59))
        problem(login(b, "wang", PASSWORD, "demo"), 423, "locked")
        svc.clock.advance(dt.timedelta(seconds=1))
        assert login(b, "wang", PASSWORD, "demo").status_code == 200
        row = user_row(db, "wang")
        assert row.failed_logins == 0 and row.locked_until is None
        # a success resets the count: two failures, a success, two failures is no lock
        for c in (a, b):
            problem(login(c, "wang", "bad", "demo"), 401, "not-authenticated")
        assert login(a, "wang", PASSWORD, "demo").status_code == 200
        for c in (b, a):
            problem(login(c, "wang", "bad", "demo"), 401, "not-authenticated")
        assert login(b, "wang", PASSWORD, "demo").status_code == 200
        # the other users were never affected
        assert login(a, "li").status_code == 200
    finally:
        svc2.close()


def test_concurrent_guesses_lock_the_account(
    svc: CaseService, client: Client, db: Database
) -> None:
    apps = [build_app(svc), build_app(svc)]
    clients = [client(apps[i % 2]) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda c: login(c, "li", "guess").status_code, clients))
    assert set(statuses) <= {401, 423} and 423 in statuses, statuses
    problem(login(client(), "li"), 423, "locked")


# -- companies ----------------------------------------------------------------------------------


def test_a_member_of_two_companies_chooses_one(client: Client) -> None:
    c = client()
    body = problem(login(c, "wang"), 422, "invalid-input")
    assert "company" in body["errors"] and "acme" in body["detail"] and "demo" in body["detail"]
    assert c.cookies.get("kefu_session") is None
    problem(login(c, "wang", company="elsewhere"), 403, "not-allowed")
    problem(login(c, "li", company="acme"), 403, "not-allowed")
    r = login(c, "wang", company="acme")
    assert r.status_code == 200
    assert r.json()["company"] == "acme"
    assert [co["key"] for co in r.json()["companies"]] == ["acme", "demo"]
    assert c.get(WHOAMI).json()["company"] == "acme"


def test_x_kefu_company_switches_for_one_request_members_only(client: Client) -> None:
    wang = client()
    login(wang, "wang", company="demo")
    assert wang.get(WHOAMI, headers={"X-Kefu-Company": "acme"}).json()["company"] == "acme"
    assert wang.get("/api/v1/me", headers={"X-Kefu-Company": "acme"}).json()["departments"] == [
        "desk"
    ]
    assert wang.get(WHOAMI).json()["company"] == "demo"  # for that one request only
    li = client()
    login(li, "li")
    assert (
        "acme"
        in problem(li.get(WHOAMI, headers={"X-Kefu-Company": "acme"}), 403, "not-allowed")["detail"]
    )
    problem(li.get(WHOAMI, headers={"X-Kefu-Company": "no-such"}), 403, "not-allowed")
    assert li.get(WHOAMI, headers={"X-Kefu-Company": "demo"}).json()["company"] == "demo"


# -- settings -------------------------------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    assert AuthSettings.from_env({}) == AuthSettings()
    s = AuthSettings.from_env(
        {
            "KEFU_SESSION_IDLE_MINUTES": "10",
            "KEFU_SESSION_MAX_HOURS": "1.5",
            "KEFU_MAX_FAILED_LOGINS": "7",
            "KEFU_LOCKOUT_MINUTES": "60",
            "KEFU_COOKIE_SECURE": "false",
            "KEFU_SESSION_COOKIE": "sid",
        }
    )
    assert s == AuthSettings(
        dt.timedelta(minutes=10), dt.timedelta(hours=1.5), 7, dt.timedelta(hours=1), False, "sid"
    )
    with pytest.raises(ValueError, match="KEFU_MAX_FAILED_LOGINS"):
        AuthSettings.from_env({"KEFU_MAX_FAILED_LOGINS": "five"})
    with pytest.raises(ValueError, match="idle_timeout"):
        AuthSettings.from_env({"KEFU_SESSION_IDLE_MINUTES": "0"})
    with pytest.raises(ValueError, match="KEFU_COOKIE_SECURE"):
        AuthSettings.from_env({"KEFU_COOKIE_SECURE": "maybe"})
    limits = AuthSettings.from_env(
        {
            "KEFU_LOGIN_PER_ADDRESS": "12",
            "KEFU_LOGIN_WINDOW_MINUTES": "5",
            "KEFU_MAX_SESSIONS": "3",
            "KEFU_LOGIN_HASH_THREADS": "2",
            "KEFU_LOGIN_HASH_QUEUE": "0",
            "KEFU_LOGIN_FAILURE_DELAY": "0.5",
            "KEFU_TRUSTED_ORIGINS": "https://kefu.example.com, https://kf.example.cn",
        }
    )
    assert limits == AuthSettings(
        login_per_address=12,
        login_window=dt.timedelta(minutes=5),
        max_sessions=3,
        hash_threads=2,
        hash_queue=0,
        failure_delay=dt.timedelta(seconds=0.5),
        trusted_origins=frozenset({"https://kefu.example.com", "https://kf.example.cn"}),
    )
    with pytest.raises(ValueError, match="KEFU_MAX_SESSIONS"):
        AuthSettings.from_env({"KEFU_MAX_SESSIONS": "2.5"})
    with pytest.raises(ValueError, match="max_sessions"):
        AuthSettings.from_env({"KEFU_MAX_SESSIONS": "0"})


# -- the command line -----------------------------------------------------------------------------


def test_cli_user_add_and_token_create_list_revoke(
    svc: CaseService, client: Client, db: Database
) -> None:
    group = click.Group("kefu")
    register(group)
    runner = CliRunner()

    def kefu(*args: str) -> Any:
        return runner.invoke(group, [*args, "--database", db.url], catch_exceptions=False)

    r = kefu(
        "user",
        "add",
        "zhou",
        "--company",
        "demo",
        "--department",
        "field",
        "--role",
        "supervisor",
        "--name",
        "周杰",
    )
    assert r.exit_code == 0, r.output
    password = r.output.split("password: ")[1].strip()
    c = client()
    assert login(c, "zhou", password).json()["display_name"] == "周杰"
    me = c.get("/api/v1/me").json()
    assert me["departments"] == ["field"] and me["direct_roles"] == ["supervisor"]
    assert me["roles"] == ["engineer", "supervisor"]  # engineer: the field department's role

    r = kefu("user", "add", "zhou", "--company", "acme", "--department", "desk")  # a second company
    assert r.exit_code == 0 and "updated" in r.output and "password" not in r.output
    assert login(client(), "zhou", password, "acme").status_code == 200
    r = kefu("user", "add", "lin", "--company", "demo", "--password", "chosen one 7")
    assert r.exit_code == 0 and "password:" not in r.output
    assert login(client(), "lin", "chosen one 7").status_code == 200
    r = kefu("user", "add", "lin", "--company", "nowhere")
    assert r.exit_code == 1 and "unknown company 'nowhere'" in r.output and "acme, demo" in r.output

    r = kefu("token", "create", "zhou", "--company", "acme", "--name", "erp-sync")
    assert r.exit_code == 0, r.output
    raw = r.stdout.strip()
    assert raw.startswith("kefu_") and "shown only now" in r.stderr
    bearer = {"Authorization": f"Bearer {raw}"}
    assert client().get(WHOAMI, headers=bearer).json()["company"] == "acme"
    r = kefu("token", "create", "li", "--company", "acme", "--name", "x")
    assert r.exit_code == 1 and "not a member" in r.output
    r = kefu("token", "create", "ghost", "--company", "demo", "--name", "x")
    assert r.exit_code == 1 and "unknown user" in r.output

    r = kefu("token", "list")
    assert (
        r.exit_code == 0 and "erp-sync" in r.output and "zhou" in r.output and "active" in r.output
    )
    assert raw not in r.output and raw[:12] in r.output
    assert "no tokens" in kefu("token", "list", "--company", "demo").output
    token_id = r.output.splitlines()[1].split()[0]

    r = kefu("token", "revoke", token_id)
    assert r.exit_code == 0 and f"token {token_id} revoked" in r.output
    problem(client().get(WHOAMI, headers=bearer), 401, "not-authenticated")
    assert "already revoked" in kefu("token", "revoke", token_id).output
    assert "revoked" in kefu("token", "list").output
    r = kefu("token", "revoke", "999")
    assert r.exit_code == 1 and "no token 999" in r.output


def test_a_request_reads_the_credential_and_membership_once_and_sees_changes_at_once(
    svc: CaseService, client: Client, db: Database
) -> None:
    """One read answers who calls and what they hold; a changed membership or a revoked
    token shows on the very next request (nothing is cached between requests)."""
    from sqlalchemy import event

    with db.write() as conn:
        token_id, raw = users.create_token(
            conn, user_row(db, "wang").id, svc.company("demo").id, "erp", svc.clock.now()
        )
    c = client()
    bearer = {"Authorization": f"Bearer {raw}"}
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert c.get("/api/v1/inbox", headers=bearer).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len([s for s in seen if "FROM membership" in s or "JOIN membership" in s]) == 1
    # wang loses the agent role: the next request can no longer open repair cases
    with db.write() as conn:
        conn.execute(
            t.membership.update()
            .where(t.membership.c.user_id == user_row(db, "wang").id)
            .values(roles=[], departments=[])
        )
    r = c.post(
        "/api/v1/cases",
        headers=bearer,
        json={"procedure": "repair-desk", "fields": {"channel": "phone", "customer_name": "x"}},
    )
    assert r.status_code == 403, r.text
    with db.write() as conn:
        users.revoke_token(conn, token_id, svc.clock.now())
    problem(c.get("/api/v1/inbox", headers=bearer), 401, "not-authenticated")


# -- cross-site requests ------------------------------------------------------------------------


def test_cross_site_writes_with_the_cookie_are_refused(
    svc: CaseService, client: Client, db: Database
) -> None:
    c = client()
    assert login(c, "wang", company="demo").status_code == 200
    body = '{"procedure": "repair-desk", "fields": {}}'
    # a form any site may post without asking: JSON in text/plain
    r = c.post("/api/v1/cases", content=body, headers={"content-type": "text/plain"})
    assert "application/json" in problem(r, 415, "unsupported-media-type")["detail"]
    evil = {"content-type": "application/json", "origin": "https://evil.example"}
    assert (
        "evil.example"
        in problem(c.post("/api/v1/cases", content=body, headers=evil), 403, "not-allowed")[
            "detail"
        ]
    )
    r = c.post(
        "/api/v1/cases/1/actions/verify",
        json={"expected_version": 1},
        headers={"sec-fetch-site": "cross-site"},
    )
    problem(r, 403, "not-allowed")
    # a login from another site is refused too (it would sign the victim in as the attacker)
    r = c.post(
        "/api/v1/auth/login",
        json={"username": "li", "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    problem(r, 403, "not-allowed")
    # the same page's requests pass (the form is checked next: 422, not 403)
    same = {"origin": "https://testserver.local", "sec-fetch-site": "same-origin"}
    r = c.post("/api/v1/cases", json={"procedure": "repair-desk", "fields": {}}, headers=same)
    problem(r, 422, "invalid-input")
    # behind a proxy that rewrites Host, the public origin is named in the settings
    proxied = client(
        build_app(
            svc,
            dataclasses.replace(SETTINGS, trusted_origins=frozenset({"https://kefu.example.com"})),
        )
    )
    assert login(proxied, "wang", company="demo").status_code == 200
    r = proxied.post(
        "/api/v1/cases",
        json={"procedure": "repair-desk", "fields": {}},
        headers={"origin": "https://kefu.example.com"},
    )
    problem(r, 422, "invalid-input")
    r = proxied.post(
        "/api/v1/cases",
        json={"procedure": "repair-desk", "fields": {}},
        headers={"origin": "https://evil.example"},
    )
    problem(r, 403, "not-allowed")
    # an API token is no browser credential: no Origin check
    with db.write() as conn:
        _, raw = users.create_token(
            conn, user_row(db, "wang").id, svc.company("demo").id, "erp", svc.clock.now()
        )
    r = client().post(
        "/api/v1/cases",
        json={"procedure": "repair-desk", "fields": {}},
        headers={"origin": "https://evil.example", "authorization": f"Bearer {raw}"},
    )
    problem(r, 422, "invalid-input")


# -- sign-in under attack -----------------------------------------------------------------------


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords checked against a real hash, in order (a dummy check is not counted)."""
    seen: list[str] = []
    verify = users.verify_password

    def counting(password_hash: str | None, password: str) -> bool:
        if password_hash is not None:
            seen.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(users, "verify_password", counting)
    return seen


def test_a_burst_of_parallel_guesses_checks_at_most_the_limit(
    svc: CaseService, client: Client, db: Database, checked: list[str]
) -> None:
    # two services with their own engines: two server processes as far as memory goes
    svc2 = service(Database(db.url), config=FIXTURES / "config-two", clock=svc.clock)
    settings = dataclasses.replace(
        SETTINGS, max_failed_logins=5, login_per_address=1000, hash_threads=4, hash_queue=64
    )
    apps = [build_app(svc, settings), build_app(svc2, settings)]

    def burst(user: str, guesses: list[str]) -> list[Any]:
        with ThreadPoolExecutor(len(guesses)) as pool:
            return list(pool.map(lambda i: login(client(apps[i % 2]), user, guesses[i]), range(40)))

    try:
        # 40 wrong passwords at once: 5 checked, then one locked answer for all
        answers = burst("li", [f"guess {i}" for i in range(40)])
        statuses = sorted(r.status_code for r in answers)
        print(f"\nburst of 40 wrong: {len(checked)} passwords checked (limit 5): {statuses}")
        assert len(checked) <= 5, checked
        assert set(statuses) <= {401, 423}
        # every refusal of the lock is the same answer, whichever password it carried
        locked = {r.text for r in answers if r.status_code == 423}
        assert len(locked) == 1 and "locked_until" in locked.pop()
        # the right password in a burst gets in only if it took one of the first places;
        # its success forgives the failures before it, never those claimed after it
        checked.clear()
        guesses = [f"guess {i}" for i in range(40)]
        guesses[20] = PASSWORD
        answers = burst("sun", guesses)
        statuses = sorted(r.status_code for r in answers)
        wrong = [p for p in checked if p != PASSWORD]
        print(f"burst of 40 with the right one: {len(checked)} checked: {statuses}")
        assert statuses.count(200) == (1 if PASSWORD in checked else 0)
        assert len(wrong) <= (9 if PASSWORD in checked else 5), checked
    finally:
        svc2.close()


def test_a_locked_account_answers_the_same_whatever_the_password(
    client: Client, checked: list[str]
) -> None:
    c = client()
    for _ in range(2):
        problem(login(c, "li", "bad"), 401, "not-authenticated")
    last = problem(login(c, "li", "bad"), 423, "locked")
    wrong = problem(login(c, "li", "another guess"), 423, "locked")
    right = problem(login(c, "li", PASSWORD), 423, "locked")
    assert last == wrong == right and right["locked_until"] == "2026-11-02T01:15:00Z"
    assert checked == ["bad"] * 3  # nothing checked while locked


def test_failed_sign_ins_per_address_are_limited(
    svc: CaseService, client: Client, checked: list[str]
) -> None:
    app = build_app(svc, dataclasses.replace(SETTINGS, login_per_address=4))
    c = client(app)
    # successes do not count; failures do, whichever usernames they try
    assert login(c, "li").status_code == 200
    for name in ("li", "ghost", "nobody", "sun"):
        problem(login(c, name, "bad"), 401, "not-authenticated")
    r = login(c, "wang", PASSWORD, "demo")
    body = problem(r, 429, "too-many-attempts")
    assert int(r.headers["retry-after"]) == 15 * 60 and "2026-11-02T01:15:00Z" in body["detail"]
    assert checked == [PASSWORD, "bad", "bad"]  # the unknown users cost a dummy check only
    svc.clock.advance(dt.timedelta(minutes=15))
    assert login(c, "wang", PASSWORD, "demo").status_code == 200


def test_the_address_count_is_one_atomic_statement(svc: CaseService, db: Database) -> None:
    now, window = svc.clock.now(), dt.timedelta(minutes=15)

    def attempt(key: str) -> dt.datetime | None:
        with db.write() as conn:
            return users.claim_address_attempt(conn, key, now, limit=10, window=window)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, ["10.0.0.1"] * 30))
    assert results.count(None) == 10 and set(results[10:]) <= {None, now + window}
    assert attempt("10.0.0.2") is None  # another address has its own count


def test_passwords_are_checked_in_a_bounded_pool(
    svc: CaseService, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    started = threading.Event()
    verify = users.verify_password

    def slow(password_hash: str | None, password: str) -> bool:
        started.set()
        release.wait(10)
        return verify(password_hash, password)

    monkeypatch.setattr(users, "verify_password", slow)
    app = build_app(svc, dataclasses.replace(SETTINGS, hash_threads=1, hash_queue=0))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(login, client(app), "li")
        assert started.wait(10)
        r = login(client(app), "sun")  # the one thread is busy and nothing may wait
        release.set()
        assert first.result().status_code == 200
    assert r.headers["retry-after"] == "1"
    problem(r, 503, "busy")
    assert login(client(app), "sun").status_code == 200


def test_sessions_per_user_are_capped_oldest_first(
    svc: CaseService, client: Client, db: Database
) -> None:
    app = build_app(svc, dataclasses.replace(SETTINGS, max_sessions=2))
    devices = [client(app) for _ in range(3)]
    for c in devices:
        assert login(c, "li").status_code == 200
        svc.clock.advance(dt.timedelta(seconds=1))
    assert len(session_rows(db)) == 2
    problem(devices[0].get(WHOAMI), 401, "not-authenticated")
    assert all(c.get(WHOAMI).status_code == 200 for c in devices[1:])


def test_kefu_cookie_secure_holds_on_loopback() -> None:

    assert not serve_auth_settings("127.0.0.1", None, {}).cookie_secure  # plain http://localhost
    behind_proxy = serve_auth_settings("127.0.0.1", None, {"KEFU_COOKIE_SECURE": "1"})
    assert behind_proxy.cookie_secure
    assert serve_auth_settings("0.0.0.0", None, {}).cookie_secure
    assert not serve_auth_settings("0.0.0.0", True, {"KEFU_COOKIE_SECURE": "1"}).cookie_secure


def test_a_success_in_a_burst_forgives_only_the_places_before_it(
    svc: CaseService, db: Database
) -> None:
    uid, now = user_row(db, "li").id, svc.clock.now()

    def claim() -> Any:
        with db.write() as conn:
            return users.claim_login_attempt(
                conn, uid, now, max_failures=5, lockout=dt.timedelta(minutes=15)
            )

    places = [claim() for _ in range(5)]  # five attempts in flight; the fifth locks
    assert [p.n for p in places] == [1, 2, 3, 4, 5] and places[4].locked_until is not None
    with db.write() as conn:  # the third was the right password
        users.clear_failed_logins(conn, uid, 3)
    row = user_row(db, "li")
    assert row.failed_logins == 2 and row.locked_until == places[4].locked_until
    assert isinstance(claim(), dt.datetime)  # still locked: no new place for the burst
    svc.clock.advance(dt.timedelta(minutes=15))
    with db.write() as conn:
        users.clear_failed_logins(conn, uid)
    assert claim().n == 1  # one success alone, in the last place, lifts everything
    with db.write() as conn:
        users.clear_failed_logins(conn, uid, 1)
    row = user_row(db, "li")
    assert row.failed_logins == 0 and row.locked_until is None
