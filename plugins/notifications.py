"""Built-in notification channels: ``log`` and ``file`` for development (SMTP and webhook below).

Every channel receives one outbox message at a time, after the action that queued it
committed, with the company's settings for the channel (``channels:`` in the company
config). A channel raises :class:`core.outbox.DeliveryError` to have the message retried
(or ``permanent=True`` to give up at once).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core import hookimpl
from core.outbox import DeliveryError, OutboxMessage

log = logging.getLogger("kefu.notify")


def message_record(message: OutboxMessage) -> dict[str, Any]:
    """The JSON form of a message, as the file channel writes it and webhooks send it."""
    return {
        "id": message.idempotency_key, "company": message.company, "case_id": message.case_id,
        "channel": message.channel, "to": message.recipient, "template": message.template,
        "payload": message.payload, "created_at": message.created_at.isoformat(),
    }


def parse_settings(model: type[BaseModel], settings: dict[str, Any], channel: str) -> Any:
    try:
        return model.model_validate(settings)
    except ValidationError as exc:  # a config mistake: retrying will not help
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(settings)'}: {e['msg']}" for e in exc.errors())
        raise DeliveryError(f"the company's channels.{channel} settings are invalid: {problems}",
                            permanent=True) from None


class LogChannel:
    """Writes each message to the ``kefu.notify`` log (development, demos)."""

    name = "log"

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        log.info("notify %s via %s: %s %s", message.recipient, message.channel, message.template,
                 json.dumps(message.payload, ensure_ascii=False, default=str))


class FileSettings(BaseModel):
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


@hookimpl
def kefu_notification_channels() -> list[Any]:
    return [LogChannel(), FileChannel()]
