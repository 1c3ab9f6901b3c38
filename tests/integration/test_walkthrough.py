"""docs/api.md's curl walk-through, run verbatim against a real ``kefu serve``.

A newcomer follows README → ``make run`` → docs/api.md. This test does the same: ``kefu
init --demo`` into a fresh SQLite file, reads the printed demo logins, starts ``kefu
serve`` on a free loopback port as a subprocess, and runs the documentation's shell
block with curl (only the base URL and the printed passwords substituted). The case
must reach ``closed`` with a journal that ends in ``closed``. If the server dies, its
output is shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEFU = str(Path(sys.executable).with_name("kefu"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doc_block() -> str:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("## A walk-through with curl", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return next(b for b in blocks if b.startswith("B="))


@pytest.mark.slow  # starts kefu processes (a server)
def test_the_documented_walkthrough_closes_a_case(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the documentation walk-through")
    env = {**os.environ, "KEFU_DATABASE_URL": f"sqlite:///{tmp_path / 'kefu.db'}"}
    init = subprocess.run(
        [KEFU, "init", "--demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    logins = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s+demo$", init.stdout, flags=re.M))
    assert {"wang", "li"} <= logins.keys(), init.stdout

    port = free_port()
    server = subprocess.Popen(
        [KEFU, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    out = server.stdout.read() if server.stdout else ""
                    pytest.fail(f"kefu serve did not start:\n{out}")
                time.sleep(0.2)
        script = (
            doc_block()
            .replace("B=http://127.0.0.1:8000/api/v1", f"B=http://127.0.0.1:{port}/api/v1")
            .replace("<printed password>", logins["wang"])
            .replace("<printed>", logins["li"])
        )
        run = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        out = run.stdout
        assert '"number":"BX-' in out
        assert "urn:kefu:problem" not in out, out  # no step of the walk-through was refused
        steps = re.findall(r'"step":"(\w+)"', out)
        assert steps[-1] == "closed", steps
        journal = json.loads(out[out.rindex("[\n    {") :])  # json.tool output, last
        kinds = [e["kind"] for e in journal]
        assert kinds[0] == "opened" and kinds[-1] == "closed", kinds
        assert {e["actor"] for e in journal} == {"wang", "li"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
