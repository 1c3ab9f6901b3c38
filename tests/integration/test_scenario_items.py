"""Scenario files as pytest items (rules/conftest.py): where a failure is reported.

A pytest run in a folder of its own, with the scenario plugin of rules/conftest.py and a
copy of the repair-desk pack, writes junit XML: the location an IDE or CI jumps to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.spec.catalog import ROOT

pytestmark = pytest.mark.slow  # a pytest of its own in a new process

OPEN = "{channel: phone, customer_name: 张三, phone: '13912345678', symptom: 空调不制冷}"
PASSING = f"""\
# comments before the scenario
# (its location is the first line after them)

scenario: opens a case
people: {{wang: [agent]}}
steps:
  - open: {{as: wang, fields: {OPEN}}}
    expect: {{step: intake}}
"""
FAILING = f"""\
scenario: expects the wrong step
people: {{wang: [agent]}}
steps:
  - open: {{as: wang, fields: {OPEN}}}
  - expect: {{step: repair}}
"""
INVALID = f"""\
scenario: an expectation where none can be
people: {{wang: [agent]}}
steps:
  - open: {{as: wang, fields: {OPEN}}}
  - at: 2026-10-08 09:00
    expect: {{step: intake}}
"""
CONFTEST = """\
from rules.conftest import pytest_collect_file, pytest_runtest_makereport


def pytest_configure(config):
    config.addinivalue_line("markers", "pg: PostgreSQL")
"""


def test_a_failing_scenario_is_located_at_the_line_that_failed_a_passing_one_at_its_start(
    tmp_path: Path,
) -> None:
    pack = tmp_path / "rules" / "repair-desk"
    shutil.copytree(
        ROOT / "rules" / "repair-desk", pack, ignore=shutil.ignore_patterns("scenarios")
    )
    (pack / "scenarios").mkdir()
    (pack / "scenarios" / "ok.yaml").write_text(PASSING, encoding="utf-8")
    (pack / "scenarios" / "bad.yaml").write_text(FAILING, encoding="utf-8")
    (pack / "scenarios" / "invalid.yaml").write_text(INVALID, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "reference-sqlite"]
        + ["--junitxml", "report.xml", "-o", "junit_family=xunit1", "rules"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    # each failure names the file and line: the expectation not met, the misplaced key
    assert "rules/repair-desk/scenarios/bad.yaml:5: expect.step" in run.stdout, run.stdout
    assert "rules/repair-desk/scenarios/invalid.yaml:6:5: S103" in run.stdout, run.stdout
    located = {
        c.get("file"): (int(c.get("line", "-1")), c.find("failure") is not None)
        for c in ET.parse(tmp_path / "report.xml").getroot().iter("testcase")
    }
    # pytest's locations count lines from 0
    assert located == {
        "rules/repair-desk/scenarios/bad.yaml": (5 - 1, True),
        "rules/repair-desk/scenarios/invalid.yaml": (6 - 1, True),
        "rules/repair-desk/scenarios/ok.yaml": (4 - 1, False),
    }
