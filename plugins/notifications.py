"""Built-in notification channels: ``log`` and ``file``, ``email`` (SMTP) and ``webhook``.

``log`` and ``file`` are for development.

Every channel receives one outbox message at a time, after the action that queued it
committed, with the company's settings for the channel (``channels:`` in the company
config). A channel raises :class:`core.runtime.outbox.DeliveryError` to have the message retried
(or ``permanent=True`` to give up at once).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from core import hookimpl
from core.runtime.outbox import DeliveryError, OutboxMessage

log = logging.getLogger("kefu.notify")


def message_record(message: OutboxMessage) -> dict[str, Any]:
    """The JSON form of a message, as the file channel writes it and webhooks send it."""
    return {
        "id": message.idempotency_key,
        "company": message.company,
        "case_id": message.case_id,
        "channel": message.channel,
        "to": message.recipient,
        "template": message.template,
        "payload": message.payload,
        "created_at": message.created_at.isoformat(),
    }


def parse_settings(model: type[BaseModel], settings: dict[str, Any], channel: str) -> Any:
    try:
        return model.model_validate(settings)
    except ValidationError as exc:  # a config mistake: retrying will not help
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(settings)'}: {e['msg']}" for e in exc.errors()
        )
        raise DeliveryError(
            f"the company's channels.{channel} settings are invalid: {problems}", permanent=True
        ) from None


class LogChannel:
    """Writes each message to the ``kefu.notify`` log (development, demos)."""

    name = "log"

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        if message.payload.get("body"):
            log.info(
                "notify %s via %s: %s\n%s",
                message.recipient,
                message.channel,
                message.template,
                render_text(message).rstrip("\n"),
            )
            return
        log.info(
            "notify %s via %s: %s %s",
            message.recipient,
            message.channel,
            message.template,
            json.dumps(message.payload, ensure_ascii=False, default=str),
        )


class FileSettings(BaseModel):
    """Settings of the ``file`` channel: the directory the JSON lines go to."""

    model_config = ConfigDict(extra="forbid")
    directory: Path = Path("var/outbox")


class FileChannel:
    """Appends each message as one JSON line to ``<directory>/<company>.jsonl`` (development)."""

    name = "file"
    settings_model = FileSettings

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        conf = parse_settings(FileSettings, settings, self.name)
        conf.directory.mkdir(parents=True, exist_ok=True)
        with (conf.directory / f"{message.company}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(message_record(message), ensure_ascii=False, default=str) + "\n")


# -- email (SMTP) -----------------------------------------------------------------------------


class EmailSettings(BaseModel):
    """``channels: {email: {...}}`` in the company config."""

    model_config = ConfigDict(extra="forbid")
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    # recipient ("customer", "role:supervisor", "person:zhao", or "*" for everyone else) -> address
    addresses: dict[str, str] = {}
    timeout: float = Field(default=15, gt=0, le=300)


def message_id(message: OutboxMessage, sender: str) -> str:
    """The Message-ID of a message: the same on every attempt, so a receiver can drop a resend."""
    domain = sender.rsplit("@", 1)[-1]
    return f"<kefu.{message.company}.{message.idempotency_key.replace(':', '.')}@{domain}>"


def email_address(message: OutboxMessage, conf: EmailSettings) -> str:
    if "@" in message.recipient:
        return message.recipient
    given = message.payload.get("address")
    if isinstance(given, str) and "@" in given:
        return given
    for key in (message.recipient, "*"):
        if key in conf.addresses:
            return conf.addresses[key]
    raise DeliveryError(
        f"no email address for recipient '{message.recipient}': give the rule's notify an "
        "address: field, or map it under channels.email.addresses",
        permanent=True,
    )


def render_text(message: OutboxMessage) -> str:
    """The message's text from its template (rendered when it was queued), else a plain listing."""
    body = message.payload.get("body")
    if isinstance(body, str) and body:
        return body + "\n"
    lines = [
        f"{message.template}",
        "",
        f"case: {message.payload.get('case', '')}",
        f"step: {message.payload.get('step', '')}",
    ]
    for name, value in (message.payload.get("fields") or {}).items():
        lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


class EmailChannel:
    """Sends each message as a plain-text email through the company's SMTP server.

    The Message-ID is derived from the idempotency key, so the one message a crash may hand
    over twice reaches the mailbox with the same id (mail systems and clients drop the
    duplicate). 5xx answers are permanent failures; 4xx answers and network errors are retried.
    """

    name = "email"
    settings_model = EmailSettings

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        conf: EmailSettings = parse_settings(EmailSettings, settings, self.name)
        to = email_address(message, conf)
        mail = EmailMessage()
        mail["From"] = conf.sender
        mail["To"] = to
        subject = message.payload.get("subject")
        mail["Subject"] = (
            subject
            if isinstance(subject, str) and subject
            else f"[{message.payload.get('case', message.company)}] {message.template}"
        )
        mail["Message-ID"] = message_id(message, conf.sender)
        mail["Date"] = formatdate(message.created_at.timestamp(), localtime=False)
        mail["X-Kefu-Idempotency-Key"] = message.idempotency_key
        mail.set_content(render_text(message))
        try:
            smtp_class = smtplib.SMTP_SSL if conf.security == "ssl" else smtplib.SMTP
            with smtp_class(conf.host, conf.port, timeout=conf.timeout) as smtp:
                if conf.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if conf.username:
                    smtp.login(
                        conf.username, conf.password.get_secret_value() if conf.password else ""
                    )
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            raise DeliveryError(
                f"the SMTP server refused {to}: {exc.recipients}",
                permanent=all(c >= 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot reach SMTP {conf.host}:{conf.port}: {type(exc).__name__}: {exc}"
            ) from None


# -- webhook ---------------------------------------------------------------------------------


class WebhookSettings(BaseModel):
    """``channels: {webhook: {url: https://…, secret: …}}`` in the company config."""

    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl
    secret: SecretStr | None = None  # signs the body: X-Kefu-Signature: sha256=<hex HMAC>
    headers: dict[str, str] = {}
    timeout: float = Field(default=10, gt=0, le=120)
    # loopback, private, link-local and other non-public addresses are refused unless allowed
    allow_private: bool = False


def public_address(host: str, port: int, allow_private: bool) -> str:
    """Resolve ``host`` and return the address to connect to; refuse non-public ones.

    Every address the name resolves to is checked (a name with one public and one private
    address is refused), and the connection then goes to the checked address, so a DNS
    answer that changes between the check and the connection cannot redirect it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"cannot resolve webhook host '{host}': {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for a in addresses:
            ip = ipaddress.ip_address(a.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise DeliveryError(
                    f"webhook host '{host}' resolves to {a}, a non-public address; refused "
                    "(set allow_private: true in channels.webhook if the company means it)",
                    permanent=True,
                )
    return addresses[0]


class WebhookChannel:
    """POSTs each message as JSON to the company's URL.

    Headers: ``Idempotency-Key`` (the same on every attempt: the receiver drops a resend),
    ``X-Kefu-Signature: sha256=<HMAC of the body>`` when a secret is set. 2xx is delivered;
    408, 429 and 5xx are retried; other 4xx answers are permanent failures.
    """

    name = "webhook"
    settings_model = WebhookSettings

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        conf: WebhookSettings = parse_settings(WebhookSettings, settings, self.name)
        url = urlsplit(str(conf.url))
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = public_address(host, port, conf.allow_private)
        netloc = f"[{ip}]" if ":" in ip else ip
        target = urlunsplit((url.scheme, f"{netloc}:{port}", url.path or "/", url.query, ""))
        body = json.dumps(message_record(message), ensure_ascii=False, default=str).encode()
        headers = {
            **conf.headers,
            "Host": url.netloc.rsplit("@", 1)[-1],
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "User-Agent": "kefu-webhook",
        }
        if conf.secret is not None:
            digest = hmac.new(
                conf.secret.get_secret_value().encode(), body, hashlib.sha256
            ).hexdigest()
            headers["X-Kefu-Signature"] = f"sha256={digest}"
        try:
            with httpx.Client(timeout=conf.timeout, follow_redirects=False) as client:
                response = client.post(
                    target,
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": host} if url.scheme == "https" else {},
                )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {host}: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return
        code = response.status_code
        raise DeliveryError(
            f"webhook {host} answered {code}: {response.text[:200]}",
            permanent=code < 500 and code not in (408, 429),
        )


@hookimpl
def kefu_notification_channels() -> list[Any]:
    return [LogChannel(), FileChannel(), EmailChannel(), WebhookChannel()]
