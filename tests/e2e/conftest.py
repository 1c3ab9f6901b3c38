"""A real ``kefu serve`` on a free loopback port and a real Chromium (Playwright).

The server runs on a fresh SQLite file with the demo company (``kefu init --demo``; the
printed passwords are replaced by known ones). The browser is Debian's ``chromium``
(``make setup`` installs it; Playwright's own browser downloads are not used): without it
these tests are skipped on a developer's machine and **fail** in CI (``CI=true``).
Screenshots go to ``var/e2e/`` (``KEFU_E2E_ARTEFACTS`` to choose another folder); when a
test fails, the server's output is shown.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.requires import missing

ROOT = Path(__file__).resolve().parents[2]
KEFU = str(Path(sys.executable).with_name("kefu"))
CHROMIUM = os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = ROOT / "var" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse 1"
USERS = ("wang", "li", "zhao", "qian", "chen", "sun", "zhou", "xu", "lin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The running server: its base URL, database file and output (shown on failures)."""

    def __init__(self, process: subprocess.Popen[str], base: str, log: Path, db: Path) -> None:
        self.process, self.base, self.log, self.db = process, base, log, db

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "KEFU_DATABASE_URL": f"sqlite:///{tmp / 'kefu.db'}"}
    run = subprocess.run(
        [KEFU, "init", "--demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for user in USERS:
        done = subprocess.run(
            [KEFU, "user", "password", user, "--password", PASSWORD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    port = _free_port()
    env["KEFU_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [KEFU, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    srv = Server(process, f"http://127.0.0.1:{port}", log, tmp / "kefu.db")
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"kefu serve did not start:\n{srv.output()}")
            time.sleep(0.2)
    yield srv
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        missing(f"no Chromium at {CHROMIUM}: `make setup` installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # the dev extra installs it
        missing("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def artefacts() -> Path:
    folder = Path(os.environ.get("KEFU_E2E_ARTEFACTS", ROOT / "var" / "e2e"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    srv = getattr(item, "funcargs", {}).get("server")
    if report.when == "call" and report.failed and isinstance(srv, Server):
        report.sections.append(("kefu serve output", srv.output()[-20000:]))
