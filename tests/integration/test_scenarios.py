"""The scenario runner: its format errors, its failure messages, and where it runs.

Scenario files are written into a copy of the repair-desk pack under tmp_path, so every
message can be checked for the exact ``file:line`` it names.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from core.cli import cli
from core.spec.catalog import ROOT
from core.testing import scenarios
from core.testing.scenarios import (
    ScenarioFailed,
    ScenarioInvalid,
    load_scenario,
    run_paths,
    run_scenario,
)

OPEN = "{channel: phone, customer_name: 张三, phone: '13912345678', symptom: 空调不制冷}"
VERIFY = (
    "{contact_verified: true, in_scope: true, onsite_needed: true, category: electrical, "
    "urgency: medium}"
)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A copy of the repair-desk pack without its scenarios."""
    dest = tmp_path / "rules" / "repair-desk"
    shutil.copytree(
        ROOT / "rules" / "repair-desk", dest, ignore=shutil.ignore_patterns("scenarios")
    )
    (dest / "scenarios").mkdir()
    return dest


def write(pack: Path, body: str, name: str = "s.yaml") -> Path:
    path = pack / "scenarios" / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line
    )


def test_every_format_problem_is_reported_at_once_with_line_and_column(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: broken
        engine: durable
        people:
          wang: {{roles: [agnet]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
          - after: 3 wrokdays
          - act: {{as: wang, action: verfy, version: 0}}
          - expect: {{error: stale-version, stepp: dispatch}}
          - act: {{as: wang, action: verify}}
            expect: {{error: conflict}}
          - at: someday
    """,
    )
    with pytest.raises(ScenarioInvalid) as info:
        load_scenario(path)
    got = {(d.line, d.code, d.message) for d in info.value.diagnostics}
    text_ = str(info.value)
    assert (2, "S102", "engine: unknown key 'engine'") in got
    assert any(
        line == 7 and code == "S103" and "after: '3 wrokdays' is not a duration" in msg
        for line, code, msg in got
    )
    assert any(line == 8 and "version must be a whole number" in msg for line, _, msg in got)
    assert any(
        line == 9 and code == "S103" and "attach it to that open:/act:" in msg
        for line, code, msg in got
    )
    assert any(line == 9 and code == "S102" and "'stepp'" in msg for line, code, msg in got)
    assert any(line == 11 and "unknown error code 'conflict'" in msg for line, _, msg in got)
    assert any(line == 12 and "is not a date and time" in msg for line, _, msg in got)
    # checks against the pack come in the same report
    assert any(line == 4 and "unknown role 'agnet'" in msg for line, _, msg in got)
    assert any(line == 8 and "unknown action 'verfy'" in msg for line, _, msg in got)
    assert "did you mean 'verify'?" in text_ and "did you mean 'step'?" in text_
    assert f"{path.name}:2:1: S102" in text_.replace(str(path.parent) + "/", "")


def test_an_unmet_expectation_names_its_line_and_what_was_found(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: wrong expectations
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
          - act: {{as: wang, action: verify, fields: {VERIFY}}}
            expect:
              step: repair
              fields: {{urgency: high}}
              outbox: [{{to: customer, template: repair.urgent}}]
    """,
    )
    with pytest.raises(ScenarioFailed) as info:
        run_scenario(path, evaluator_kind="reference")
    text_ = str(info.value)
    step_line, fields_line, outbox_line = (
        line_of(path, k) for k in ("step: repair", "fields: {urgency", "outbox:")
    )
    assert info.value.where.endswith(f"s.yaml:{step_line}")
    assert "expect.step: expected step 'repair', found 'dispatch'" in text_
    assert (
        f"s.yaml:{fields_line}: expect.fields: field 'urgency': expected 'high', found 'medium'"
        in text_
    )
    assert (
        f"s.yaml:{outbox_line}: expect.outbox: expected message 1" in text_
        and "found none" in text_
    )


def test_an_action_that_fails_unexpectedly_says_why_and_how_to_expect_it(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: unexpected
        people: {{wang: [agent], li: [engineer]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
          - act: {{as: li, action: verify, fields: {VERIFY}}}
    """,
    )
    with pytest.raises(ScenarioFailed) as info:
        run_scenario(path, evaluator_kind="reference")
    assert info.value.where.endswith(f"s.yaml:{line_of(path, 'as: li')}")
    assert "act 'verify' as li failed: not-allowed" in info.value.message
    assert "expect: {error: not-allowed}" in str(info.value)


def test_an_expected_failure_that_does_not_happen_fails(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: no error
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
          - act: {{as: wang, action: verify, fields: {VERIFY}}}
            expect: {{refused: {{rule: hours-must-be-recorded}}}}
    """,
    )
    with pytest.raises(ScenarioFailed) as info:
        run_scenario(path, evaluator_kind="reference")
    assert info.value.where.endswith(f"s.yaml:{line_of(path, 'refused:')}")
    assert (
        "expected it to fail (refused by rule hours-must-be-recorded), but it succeeded"
        in info.value.message
    )
    assert "step 'dispatch'" in info.value.message


def test_a_wrong_error_and_missing_invalid_fields_are_named(pack: Path) -> None:
    path = write(
        pack,
        """
        scenario: wrong error
        people: {wang: [agent]}
        steps:
          - open: {as: wang, fields: {channel: phone, customer_name: 张三}}
            expect: {error: {invalid-input: [phone]}}
    """,
    )
    with pytest.raises(ScenarioFailed) as info:
        run_scenario(path, evaluator_kind="reference")
    assert "fields symptom (required) are in error too" in info.value.message


def write_linked_packs(rules: Path) -> None:
    (rules / "parent").mkdir()
    (rules / "parent" / "procedure.yaml").write_text(
        textwrap.dedent("""
        kefu: 1
        procedure: parent
        title: Parent
        roles: {agent: {label: Agent}}
        fields:
          summary: {type: text, label: Summary}
          escalate: {type: boolean, label: Escalate}
        open: {role: [agent], ask: [summary], require: [summary]}
        start: work
        steps:
          work:
            label: Work
            role: agent
            actions:
              finish: {label: Finish, to: done, ask: [escalate]}
          done: {label: Done, final: true}
        rules:
          - id: open-child
            when: action == "finish" and escalate
            then:
              - open_case: {procedure: child, link: follow-up, copy: {title: summary}}
        """),
        encoding="utf-8",
    )
    (rules / "child").mkdir()
    (rules / "child" / "procedure.yaml").write_text(
        textwrap.dedent("""
        kefu: 1
        procedure: child
        title: Child
        roles: {agent: {label: Agent}}
        fields: {title: {type: text, label: Title}}
        open: {role: [agent], ask: [title]}
        start: review
        steps:
          review: {label: Review, role: agent, actions: {close: {label: Close, to: closed}}}
          closed: {label: Closed, final: true}
        """),
        encoding="utf-8",
    )
    (rules / "parent" / "scenarios").mkdir()


def test_linked_cases_can_be_named_and_acted_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    write_linked_packs(rules)
    path = write(
        rules / "parent",
        """
        scenario: a linked follow-up case
        people: {ann: [agent]}
        steps:
          - open: {as: ann, name: first, fields: {summary: 漏水}}
          - act: {as: ann, action: finish, fields: {escalate: true}}
            expect:
              fired: [open-child]
              status: closed
              linked:
                - procedure: child
                  link: follow-up
                  rule: open-child
                  step: review
                  name: followup
          - expect:
              case: followup
              step: review
              fields: {title: 漏水}
              actions: {as: ann, only: [close]}
          - act: {as: ann, case: followup, action: close}
            expect: {case: followup, status: closed}
          - expect: {case: first, linked: [{procedure: child, status: closed}]}
    """,
    )
    result = run_scenario(path, evaluator_kind="reference")
    assert [s.fired for s in result.trace if s.kind == "act"] == [["open-child"], []]
    assert len(result.final) == 2


def test_a_named_case_must_be_named_before_it_is_used(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: alias first
        people: {{wang: [agent]}}
        steps:
          - act: {{as: wang, case: later, action: verify, fields: {VERIFY}}}
          - open: {{as: wang, name: later, fields: {OPEN}}}
    """,
    )
    with pytest.raises(ScenarioInvalid, match="unknown case 'later'"):
        run_scenario(path, evaluator_kind="reference")


def test_a_company_config_and_its_people_can_be_used_and_extended(pack: Path) -> None:
    shutil.copytree(ROOT / "config", pack.parent.parent / "config")
    for other in ROOT.joinpath("rules").glob("*/procedure.yaml"):  # the packs the config enables
        if other.parent.name != "repair-desk":
            shutil.copytree(
                other.parent,
                pack.parent.parent / "rules" / other.parent.name,
                ignore=shutil.ignore_patterns("scenarios"),
            )
    path = write(
        pack,
        f"""
        scenario: demo company
        company: config/demo.yaml
        people:
          sun: {{departments: [field]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
          - act: {{as: wang, action: verify, fields: {VERIFY}}}
          - act:
              as: wang
              action: dispatch
              fields: {{engineer: sun, engineer_contact: '13800000009', visit_at: 2026-11-03 10:00}}
            expect:
              assignees: [person:sun]
              actions: [{{as: sun, only: [diagnose, complete, reschedule]}}, {{as: zhao, only: []}}]
    """,
    )
    run_scenario(path, evaluator_kind="reference")


def test_time_only_moves_forward_once_something_happened(pack: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: back in time
        people: {{wang: [agent]}}
        steps:
          - at: 2026-01-01 09:00
          - open: {{as: wang, fields: {OPEN}}}
          - at: 2025-12-31 09:00
    """,
    )
    with pytest.raises(ScenarioFailed, match="time only moves forward") as info:
        run_scenario(path, evaluator_kind="reference")
    assert info.value.where.endswith(f"s.yaml:{line_of(path, 'at: 2025')}")


def test_kefu_test_exits_0_on_success_and_1_with_file_and_line_on_failure(pack: Path) -> None:

    good = write(
        pack,
        f"""
        scenario: fine
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
            expect: {{step: intake}}
    """,
        "good.yaml",
    )
    runner = CliRunner()
    ok = runner.invoke(cli, ["test", str(pack), "--engine", "reference"])
    assert ok.exit_code == 0, ok.output
    assert f"PASS {good}: fine [reference]" in ok.output.replace(str(Path.cwd()) + "/", "")
    assert "1 passed, 0 failed" in ok.output
    bad = write(
        pack,
        f"""
        scenario: not fine
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
            expect: {{step: dispatch}}
    """,
        "bad.yaml",
    )
    lines: list[str] = []
    assert run_paths([pack], evaluator_kind="reference", echo=lines.append) == 1
    out = "\n".join(lines)
    assert (
        "FAIL" in out
        and f"bad.yaml:{line_of(bad, 'step: dispatch')}: expect.step: expected step "
        "'dispatch', found 'intake'"
        in out
    )
    assert "1 passed, 1 failed" in out


def test_a_sqlite_url_must_name_a_new_file_which_is_kept(pack: Path, tmp_path: Path) -> None:
    path = write(
        pack,
        f"""
        scenario: kept
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
    """,
    )
    file = tmp_path / "look.db"
    run_scenario(path, evaluator_kind="reference", db_url=f"sqlite:///{file}")
    assert file.exists()
    with pytest.raises(Exception, match="does not exist yet"):
        run_scenario(path, evaluator_kind="reference", db_url=f"sqlite:///{file}")


@pytest.mark.pg
def test_a_postgresql_url_gets_a_throwaway_database(
    pack: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        pack,
        f"""
        scenario: on postgres
        people: {{wang: [agent]}}
        steps:
          - open: {{as: wang, fields: {OPEN}}}
            expect: {{step: intake}}
    """,
    )
    engine = create_engine(pg_url)

    def scenario_dbs() -> set[str]:
        with engine.connect() as conn:
            return set(
                conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'kefu_scenario_%'")
                ).scalars()
            )

    # the database this run makes (other test processes make their own meanwhile)
    made: list[str] = []
    during: list[set[str]] = []
    real = scenarios.temporary_pg_database

    @contextlib.contextmanager
    def watched(url: str, prefix: str = "kefu_scenario") -> Iterator[str]:
        with real(url, prefix) as inner:
            made.append(inner.rsplit("/", 1)[1])
            during.append(scenario_dbs())
            yield inner

    monkeypatch.setattr(scenarios, "temporary_pg_database", watched)
    try:
        result = run_scenario(path, evaluator_kind="reference", db_url=pg_url)
        assert result.final and len(made) == 1
        assert made[0] in during[0] and made[0] not in scenario_dbs()  # made, then dropped
    finally:
        engine.dispose()


# -- docs/scenarios.md stays true ---------------------------------------------------------
DOC = ROOT / "docs" / "scenarios.md"


def test_the_example_in_the_docs_runs(pack: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    example = next(b for b in blocks if "\nscenario:" in "\n" + b)
    path = write(pack, example, "example.yaml")
    result = run_scenario(path, evaluator_kind="reference")
    assert [s.outcome for s in result.trace if s.kind == "act"] == [
        "not-allowed",
        "ok",
        "ok",
        "refused-by-rule",
    ]


def test_every_scenario_code_is_documented_and_every_documented_code_is_used() -> None:
    source = (ROOT / "core" / "testing" / "scenarios.py").read_text(encoding="utf-8")
    emitted = set(re.findall(r"""["'](S\d{3})["']""", source))
    documented = set(re.findall(r"^\| (S\d{3}) \|", DOC.read_text(encoding="utf-8"), flags=re.M))
    assert emitted == documented
