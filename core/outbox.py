"""The outbox contract: messages written by an action, delivered after it commits.

Rows are written in the action's transaction by the case service (``outbox`` table,
status ``pending``, an idempotency key per message). After commit the worker hands each
pending message to the :class:`Channel` named by its ``channel`` column. Channels come
from plugins (``kefu_notification_channels``); a channel must use
``message.idempotency_key`` so that a message handed over twice (a worker killed between
sending and recording) is delivered once at the receiving end where it can (SMTP
``Message-ID``, webhook ``Idempotency-Key`` header) and is never sent twice by kefu
once recorded as sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboxMessage:
    """One pending message, as handed to a channel."""

    id: int
    company_id: int
    company: str
    case_id: int | None
    channel: str
    recipient: str
    template: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    created_at: dt.datetime


class DeliveryError(Exception):
    """Raised by a channel: ``permanent=True`` gives up at once, otherwise retried later."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """A way to deliver outbox messages (log, file, SMTP, webhook, SMS...)."""

    name: str

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        """Deliver ``message``; ``settings`` are the company's settings for this channel.

        Return normally when delivered; raise :class:`DeliveryError` otherwise.
        """
