"""Password hashing: strong argon2 parameters unless KEFU_PASSWORD_HASH=fast (tests only).

The test suite sets KEFU_PASSWORD_HASH=fast (tests/conftest.py), so what kefu does
without it is checked in a fresh interpreter with the variable removed.
"""

from __future__ import annotations

import os
import subprocess
import sys

from core.runtime import users

SCRIPT = """
from core.runtime.users import hash_password, verify_password
h = hash_password("correct horse 1")
print(h)
print(verify_password(h, "correct horse 1"), verify_password(h, "wrong"))
"""


def kefu_python(mode: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEFU_PASSWORD_HASH"}
    if mode is not None:
        env["KEFU_PASSWORD_HASH"] = mode
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_without_the_variable_passwords_get_the_strong_argon2_defaults() -> None:
    run = kefu_python(None)
    assert run.returncode == 0, run.stderr
    stored, verified = run.stdout.splitlines()
    # argon2id, 64 MiB, 3 passes, 4 lanes: RFC 9106's low-memory profile
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    assert verified == "True False"


def test_an_unknown_value_stops_kefu_instead_of_hashing_weakly() -> None:
    run = kefu_python("cheap")
    assert run.returncode != 0
    assert "KEFU_PASSWORD_HASH='cheap'" in run.stderr


def test_the_suite_runs_with_the_cheapest_parameters_and_they_still_verify() -> None:
    stored = users.hash_password("correct horse 1")
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$"), stored
    assert users.verify_password(stored, "correct horse 1")
    assert not users.verify_password(stored, "correct horse 2")
