"""The email (SMTP) and webhook channels against real local servers started by the test.

Exactly once per message: kefu records a message sent right after its channel returns; the
one message a worker may hand over twice (killed between the send and the record) carries
the same Message-ID / Idempotency-Key, so the receiver keeps one copy. These tests kill a
worker in that window — in process, and a real ``kefu worker`` with SIGKILL — and count
what the receiver kept.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from core.clock import TestClock
from core.runtime import outbox
from core.runtime.outbox import DeliveryError
from core.runtime.plugins import installed
from core.runtime.worker import Worker
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import upgrade
from plugins.notifications import EmailChannel, WebhookChannel, public_address, render_text
from tests.helpers import DISPATCH, OPEN_FIELDS, VERIFY, demo_with_channels, service

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
CHANNELS = {"email": EmailChannel(), "webhook": WebhookChannel()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- local receivers ---------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps every message; ``answers`` may script 4xx/5xx replies."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.answers: list[str] = []
        self.delay = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answers:
            return self.answers.pop(0)
        if self.delay:
            time.sleep(self.delay)  # a slow server: keeps the worker inside the send
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"

    def kept(self) -> dict[str, email.message.Message]:
        """What a mail system keeps: one message per Message-ID."""
        return {m["Message-ID"]: m for m in self.messages}


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Hook:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0

    def kept(self) -> dict[str, bytes]:
        return {h["Idempotency-Key"]: body for h, body in self.requests}


@pytest.fixture
def webhook() -> Iterator[tuple[Hook, int]]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = hook.statuses.pop(0) if hook.statuses else 200
            if status == 200:
                if hook.delay:
                    time.sleep(hook.delay)
                hook.requests.append((dict(self.headers), body))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the loop's next poll: 0.5 s by default, at every test's end
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield hook, server.server_address[1]
    server.shutdown()


def config_with(tmp_path: Path, channels: str) -> Path:
    """config/demo.yaml with a ``channels:`` section, in a directory of its own."""
    out = tmp_path / "config"
    out.mkdir(exist_ok=True)
    (out / "demo.yaml").write_text(demo_with_channels(channels), encoding="utf-8")
    return out


def email_config(tmp_path: Path, port: int) -> Path:
    return config_with(
        tmp_path,
        f"""  default: {{use: email}}
  email:
    host: 127.0.0.1
    port: {port}
    sender: kefu@demo.test
    addresses: {{customer: customer@demo.test, "*": desk@demo.test}}
""",
    )


def webhook_config(
    tmp_path: Path, port: int, allow_private: bool = True, host: str = "127.0.0.1"
) -> Path:
    return config_with(
        tmp_path,
        f"""  default: {{use: webhook}}
  webhook:
    url: http://{host}:{port}/kefu/events
    secret: s3cret
    allow_private: {str(allow_private).lower()}
""",
    )


def make_cases(svc: Any, n: int) -> list[dict[str, Any]]:
    """``n`` repair cases walked to the engineer (each queues its messages); returns the outbox."""
    wang = svc.actor("demo", "wang")
    for _ in range(n):
        cid = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
        svc.act("demo", cid, "verify", wang, {**VERIFY, "urgency": "high"}, 1)
        svc.act("demo", cid, "dispatch", wang, DISPATCH, 2)
    return outbox_rows(svc.db)


def outbox_rows(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [
            dict(r._mapping) for r in conn.execute(select(t.outbox).order_by(t.outbox.c.id)).all()
        ]


class CrashAfterSend:
    """Delivers through the real channel, then dies (SystemExit) before kefu records it sent."""

    def __init__(self, channel: Any, crash_on: int) -> None:
        self.name, self.channel, self.crash_on, self.calls = channel.name, channel, crash_on, 0

    def deliver(self, message: Any, settings: dict[str, Any]) -> None:
        self.channel.deliver(message, settings)
        self.calls += 1
        if self.calls == self.crash_on:
            raise SystemExit("worker killed between send and record")


# -- email -------------------------------------------------------------------------------------


def test_email_sends_each_message_with_a_stable_message_id(
    db: Database, tmp_path: Path, smtp: Any
) -> None:
    box, port = smtp
    svc = service(db, config=email_config(tmp_path, port), clock=TestClock(T0))
    rows = make_cases(svc, 2)
    report = outbox.deliver_pending(svc, CHANNELS)
    assert (report.sent, report.failed) == (len(rows), 0)
    assert len(box.messages) == len(rows)
    by_id = box.kept()
    assert len(by_id) == len(rows)  # one Message-ID per message
    urgent = [m for m in box.messages if m["Subject"].startswith("紧急报修 ")]
    assert len(urgent) == 2 and {m["X-Envelope-To"] for m in urgent} == {"desk@demo.test"}
    # the customer's mail carries the pack's template text (rules/repair-desk templates:)
    to_customer = [m for m in box.messages if "已派工" in m["Subject"]]
    assert len(to_customer) == 2 and {m["X-Envelope-To"] for m in to_customer} == {
        "customer@demo.test"
    }
    body = to_customer[0].get_content()
    assert "已安排维修工程师 li(电话 13800000001)" in body and "2026-11-23 10:00" in body
    assert "空调不制冷" in urgent[0].get_content()  # the symptom, in the pack's urgent text
    assert {m["X-Kefu-Idempotency-Key"] for m in box.messages} == {
        r["idempotency_key"] for r in rows
    }


def test_a_message_without_a_text_is_a_plain_listing() -> None:

    msg = outbox.OutboxMessage(
        1,
        1,
        "demo",
        7,
        "email",
        "role:x",
        "custom.thing",
        {"case": "BX-1", "step": "repair", "fields": {"category": "electrical"}},
        "1:2:0",
        1,
        T0,
    )
    assert render_text(msg) == "custom.thing\n\ncase: BX-1\nstep: repair\ncategory: electrical\n"


def test_email_exactly_once_when_the_worker_dies_between_send_and_record(
    db: Database, tmp_path: Path, smtp: Any
) -> None:
    box, port = smtp
    clock = TestClock(T0)
    svc = service(db, config=email_config(tmp_path, port), clock=clock)
    rows = make_cases(svc, 3)
    crashing = CrashAfterSend(CHANNELS["email"], crash_on=2)
    with pytest.raises(SystemExit):
        outbox.deliver_pending(svc, {"email": crashing}, owner="worker-1")
    assert len(box.messages) == 2
    assert [r["status"] for r in outbox_rows(db)].count(
        "sent"
    ) == 1  # the second was sent, not recorded
    # a restarted worker takes the leased messages over once the lease ran out
    assert outbox.deliver_pending(svc, CHANNELS, owner="worker-2").handled == 0  # lease still held
    clock.advance(outbox.DEFAULT_LEASE + dt.timedelta(seconds=1))
    report = outbox.deliver_pending(svc, CHANNELS, owner="worker-2")
    assert report.sent == len(rows) - 1
    assert {r["status"] for r in outbox_rows(db)} == {"sent"}
    counts = Counter(m["Message-ID"] for m in box.messages)
    assert len(box.messages) == len(rows) + 1  # one message crossed the crash twice ...
    assert sorted(counts.values()) == [1] * (len(rows) - 1) + [2]  # ... with the same Message-ID
    assert len(box.kept()) == len(rows)  # so the mailbox keeps each message once


def test_email_retries_4xx_and_gives_up_on_5xx(db: Database, tmp_path: Path, smtp: Any) -> None:
    box, port = smtp
    clock = TestClock(T0)
    svc = service(db, config=email_config(tmp_path, port), clock=clock)
    rows = make_cases(svc, 1)
    box.answers = ["451 4.3.0 try again later"] + ["550 5.1.1 mailbox unavailable"]
    report = outbox.deliver_pending(svc, CHANNELS)
    assert (report.sent, report.retried, report.failed) == (len(rows) - 2, 1, 1)
    after = {r["id"]: r for r in outbox_rows(db)}
    failed = [r for r in after.values() if r["status"] == "failed"]
    assert (
        "SMTP 550" in failed[0]["last_error"]
        and "gave up: permanent error" in failed[0]["last_error"]
    )
    retried = [r for r in after.values() if r["status"] == "pending"]
    assert "SMTP 451" in retried[0]["last_error"]
    clock.advance(dt.timedelta(seconds=31))
    assert outbox.deliver_pending(svc, CHANNELS).sent == 1
    assert len(box.kept()) == len(rows) - 1


def test_email_without_an_address_fails_clearly(db: Database, tmp_path: Path, smtp: Any) -> None:
    _, port = smtp
    config = config_with(
        tmp_path,
        f"""  default: {{use: email}}
  email: {{host: 127.0.0.1, port: {port}, sender: kefu@demo.test}}
""",
    )
    svc = service(db, config=config, clock=TestClock(T0))
    make_cases(svc, 1)
    outbox.deliver_pending(svc, CHANNELS)
    errors = {r["last_error"] for r in outbox_rows(db)}
    assert any("no email address for recipient 'customer'" in (e or "") for e in errors)


# -- webhook -----------------------------------------------------------------------------------


def test_webhook_posts_signed_json_with_an_idempotency_key(
    db: Database, tmp_path: Path, webhook: Any
) -> None:
    hook, port = webhook
    svc = service(db, config=webhook_config(tmp_path, port), clock=TestClock(T0))
    rows = make_cases(svc, 2)
    assert outbox.deliver_pending(svc, CHANNELS).sent == len(rows)
    assert set(hook.kept()) == {r["idempotency_key"] for r in rows}
    headers, body = hook.requests[0]
    assert headers["Host"] == f"127.0.0.1:{port}" and headers["Content-Type"] == "application/json"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Kefu-Signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert sent["company"] == "demo" and sent["id"] == headers["Idempotency-Key"]


def test_webhook_exactly_once_when_the_worker_dies_between_send_and_record(
    db: Database, tmp_path: Path, webhook: Any
) -> None:
    hook, port = webhook
    clock = TestClock(T0)
    svc = service(db, config=webhook_config(tmp_path, port), clock=clock)
    rows = make_cases(svc, 3)
    with pytest.raises(SystemExit):
        outbox.deliver_pending(
            svc, {"webhook": CrashAfterSend(CHANNELS["webhook"], 3)}, owner="worker-1"
        )
    clock.advance(outbox.DEFAULT_LEASE + dt.timedelta(seconds=1))
    outbox.deliver_pending(svc, CHANNELS, owner="worker-2")
    assert {r["status"] for r in outbox_rows(db)} == {"sent"}
    keys = Counter(h["Idempotency-Key"] for h, _ in hook.requests)
    assert sorted(keys.values()) == [1] * (len(rows) - 1) + [2]
    assert len(hook.kept()) == len(rows)


def test_webhook_refuses_private_addresses_unless_allowed(
    db: Database, tmp_path: Path, webhook: Any
) -> None:
    hook, port = webhook
    svc = service(
        db,
        config=webhook_config(tmp_path, port, allow_private=False, host="localhost"),
        clock=TestClock(T0),
    )
    make_cases(svc, 1)
    report = outbox.deliver_pending(svc, CHANNELS)
    assert report.sent == 0 and report.failed > 0 and hook.requests == []
    error = outbox_rows(db)[0]["last_error"]
    assert "webhook host 'localhost' resolves to" in error and "non-public address" in error
    assert "allow_private: true" in error and "gave up: permanent error" in error
    for host in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
    ):
        with pytest.raises(DeliveryError, match="non-public") as info:
            public_address(host, 80, allow_private=False)
        assert info.value.permanent
    assert public_address("127.0.0.1", 80, allow_private=True) == "127.0.0.1"


def test_webhook_retries_5xx_and_gives_up_on_4xx(
    db: Database, tmp_path: Path, webhook: Any
) -> None:
    hook, port = webhook
    clock = TestClock(T0)
    svc = service(db, config=webhook_config(tmp_path, port), clock=clock)
    rows = make_cases(svc, 1)
    hook.statuses = [503, 404]
    report = outbox.deliver_pending(svc, CHANNELS)
    assert (report.sent, report.retried, report.failed) == (len(rows) - 2, 1, 1)
    errors = sorted(r["last_error"] or "" for r in outbox_rows(db))
    assert any("answered 404" in e and "permanent" in e for e in errors)
    assert any("answered 503" in e for e in errors)
    clock.advance(dt.timedelta(seconds=31))
    assert outbox.deliver_pending(svc, CHANNELS).sent == 1


# -- a real worker process, killed with SIGKILL and restarted ------------------------------------


@pytest.mark.slow  # kefu worker processes and a lease to wait out
@pytest.mark.parametrize("channel", ["email", "webhook"])
def test_kefu_worker_killed_and_restarted_delivers_each_message_once(
    channel: str, tmp_path: Path, smtp: Any, webhook: Any
) -> None:
    box, smtp_port = smtp
    hook, hook_port = webhook
    config = (
        email_config(tmp_path, smtp_port)
        if channel == "email"
        else webhook_config(tmp_path, hook_port)
    )
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    db = Database(url)

    upgrade(db)
    svc = service(db, config=config)
    rows = make_cases(svc, 15)
    svc.close()
    box.delay = hook.delay = 0.05  # a slow receiver: the kill lands in the middle of the batch
    env = {**os.environ, "KEFU_CONFIG_DIR": str(config)}
    kefu = str(Path(sys.executable).parent / "kefu")
    first = subprocess.Popen(
        [kefu, "worker", "--database", url, "--lease", "5", "--batch", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    received = box.messages if channel == "email" else hook.requests
    deadline = time.monotonic() + 60
    while len(received) < 5 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 5 <= len(received) < len(rows), (tmp_path / "worker.log").read_text()
    box.delay = hook.delay = 0.0
    time.sleep(5.5)  # the dead worker's lease runs out
    second = subprocess.run(
        [kefu, "worker", "--database", url, "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert {r["status"] for r in outbox_rows(db)} == {"sent"}
    kept = box.kept() if channel == "email" else hook.kept()
    assert len(kept) == len(rows)  # every message once at the receiver
    ids = (
        [m["X-Kefu-Idempotency-Key"] for m in box.messages]
        if channel == "email"
        else [h["Idempotency-Key"] for h, _ in hook.requests]
    )
    assert set(ids) == {r["idempotency_key"] for r in rows}
    assert len(ids) - len(set(ids)) <= 1  # at most the one in flight at the kill went twice
    db.dispose()


def test_a_company_that_disables_the_notifications_plugin_gets_no_messages(
    db: Database, tmp_path: Path, smtp: Any
) -> None:

    box, port = smtp
    config = email_config(tmp_path, port)
    path = config / "demo.yaml"
    path.write_text(
        path.read_text(encoding="utf-8") + "plugins:\n  notifications: {enabled: false}\n",
        encoding="utf-8",
    )
    svc = service(db, config=config, clock=TestClock(T0))
    make_cases(svc, 1)
    _, report = Worker(svc, installed().channels).run_once()  # as `kefu worker` delivers
    assert report.failed == len(outbox_rows(db)) and box.messages == []
    assert (
        "notification channel 'email' comes from plugin 'notifications', "
        "which company 'demo' disables" in outbox_rows(db)[0]["last_error"]
    )
