"""What a test needs from the machine: skipped locally when missing, a failure in CI.

CI (``CI=true``) runs on Linux with Python < 3.13, where every component kefu depends on
installs; a missing one there is a broken environment, never a reason to skip.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import pytest

from core.testing.scenarios import durable_available
from tests.pg import IN_CI


def missing(what: str) -> NoReturn:
    """Skip the current test locally; fail it in CI."""
    if IN_CI:
        pytest.fail(f"{what} (required in CI)", pytrace=False)
    pytest.skip(what)


def durable() -> None:
    """durable_rules' C module: a dependency below Python 3.13 (pyproject.toml)."""
    if durable_available():
        return
    if sys.version_info >= (3, 13) and not IN_CI:
        pytest.skip("durable_rules cannot be built on Python 3.13+ (the reference evaluator runs)")
    missing("durable_rules is not installed")


def linux() -> None:
    if not sys.platform.startswith("linux"):
        missing("needs Linux (PR_SET_PDEATHSIG)")
