"""The Makefile: ``make run`` serves the demo without the test plugin, ``make test`` has it.

Read from ``make --dry-run --always-make`` (every command of the target's whole chain, as
from a fresh clone, none executed) on a venv path that does not exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "tests/plugins/kefu-example"


def commands(target: str, tmp_path: Path, *settings: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.fail("make is needed: README's quick start is `make run` / `make test`")
    out = subprocess.run(
        ["make", "--dry-run", "--always-make", f"VENV={tmp_path / 'venv'}", *settings, target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.splitlines()


def test_make_run_serves_without_the_test_plugin(tmp_path: Path) -> None:
    lines = commands("run", tmp_path)
    assert not [x for x in lines if "pip install" in x and PLUGIN in x], lines
    # a venv where `make test` installed it: uninstalled before the server starts
    uninstall = next(i for i, x in enumerate(lines) if "pip uninstall" in x and "kefu-example" in x)
    serve = next(i for i, x in enumerate(lines) if x.rstrip().endswith("kefu serve"))
    assert uninstall < serve


def test_make_test_installs_the_test_plugin_before_pytest(tmp_path: Path) -> None:
    lines = commands("test", tmp_path)
    install = next(i for i, x in enumerate(lines) if "pip install" in x and PLUGIN in x)
    pytest_run = next(i for i, x in enumerate(lines) if "/bin/pytest" in x)
    assert install < pytest_run
    assert not [x for x in lines if "pip uninstall" in x], lines


def test_setup_installs_chromium_and_axe_for_the_browser_tests(tmp_path: Path) -> None:
    for target in ("test", "run"):
        lines = commands(target, tmp_path)
        # the system packages installed when missing include Debian's chromium
        assert [x for x in lines if "for p in" in x and " chromium" in x], (target, lines)
        assert [x for x in lines if "apt-get install -y" in x], (target, lines)
        assert [x for x in lines if "npm install" in x and "axe-core" in x], (target, lines)


def test_setup_compiles_the_pages_catalogues_before_they_are_read(tmp_path: Path) -> None:
    for target, reader in (("run", "kefu serve"), ("test", "/bin/pytest")):
        lines = commands(target, tmp_path)
        compiled = [
            i
            for i, x in enumerate(lines)
            if "pybabel" in x and " compile " in x and "zh_CN/LC_MESSAGES/messages.mo" in x
        ]
        assert compiled, (target, lines)
        assert compiled[0] < next(i for i, x in enumerate(lines) if reader in x), target


def test_the_venv_is_made_from_the_systems_python_when_it_can(tmp_path: Path) -> None:
    """Debian's /usr/bin/python3 (optimised, static) is preferred when it is 3.11+ and can
    make a venv; ``make PYTHON=…`` still chooses another."""
    qualifies = (
        Path("/usr/bin/python3").exists()
        and subprocess.run(
            [
                "/usr/bin/python3",
                "-c",
                "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))",
            ],
            capture_output=True,
        ).returncode
        == 0
    )
    made = [x for x in commands("setup", tmp_path) if " -m venv " in x]
    assert made, "make setup makes no venv"
    assert made[0].startswith("/usr/bin/python3 -m venv" if qualifies else "python3 -m venv")
    out = "\n".join(commands("setup", tmp_path, "PYTHON=python3.99"))
    assert "python3.99 -m venv" in out
