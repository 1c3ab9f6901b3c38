"""Domain errors of the case service. The API maps each to an RFC 9457 problem."""

from __future__ import annotations

from typing import Any


class KefuError(Exception):
    """Base of every error kefu reports to a user (never a bare traceback)."""

    code = "kefu-error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(KefuError):
    """The thing does not exist *for this company* (another company's case included)."""

    code = "not-found"
    status = 404


class NotAllowed(KefuError):
    """The actor does not hold the role the step or action needs."""

    code = "not-allowed"
    status = 403


class Conflict(KefuError):
    """``expected_version`` is stale: someone else changed the case first."""

    code = "stale-version"
    status = 409


class InvalidInput(KefuError):
    """Form data or a request failed validation; ``details['errors']`` names each field."""

    code = "invalid-input"
    status = 422


class Refused(KefuError):
    """A rule refused the action; ``details`` carry ``rule`` (its id) and the message."""

    code = "refused-by-rule"
    status = 422


class EngineUnavailable(KefuError):
    """The rule engine crashed or hung; nothing was written and the engine restarts."""

    code = "engine-unavailable"
    status = 503


class TooLarge(KefuError):
    """An upload is larger than its field (or the server) takes; nothing was stored."""

    code = "too-large"
    status = 413


class UnsupportedType(KefuError):
    """An upload's content (sniffed, not its name) is not a type its field accepts."""

    code = "unsupported-media-type"
    status = 415
