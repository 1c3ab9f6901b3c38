"""The procedure language's second edition through the case service, where a scenario
cannot look: the four-eyes refusal says why, the journal names the list item an action
changed, the API's form describes a list's items, and derived facts are journaled."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from api.models import form
from core.cases.service import CaseService
from core.errors import InvalidInput, NotAllowed
from core.runtime.users import ensure_user
from core.spec.catalog import ROOT
from core.testing.scenarios import ScenarioError, run_scenario
from tests.helpers import FIXTURES

pytestmark = pytest.mark.service(config=FIXTURES / "language", rules=ROOT / "tests" / "packs")
CO = "language-test"


def test_four_eyes_refusal_names_the_person_and_the_reason(svc: CaseService) -> None:
    li, wang = svc.actor(CO, "li"), svc.actor(CO, "wang")
    case = svc.open_case(CO, "four-eyes", li, {"summary": "渗漏", "tracker": "zhao"}).case
    svc.act(CO, case.id, "fill", wang, {"cause": "压力不足"}, 1)
    with pytest.raises(NotAllowed) as info:
        svc.act(CO, case.id, "sign", wang, {}, 2)
    assert "wang" in str(info.value) and "'fill'" in str(info.value)
    assert "four-eyes" in str(info.value)
    with pytest.raises(NotAllowed) as info:
        svc.act(CO, case.id, "sign", svc.actor(CO, "zhao"), {}, 2)
    assert "zhao" in str(info.value) and "跟踪人" in str(info.value)
    # the refused attempts wrote nothing: the third manager signs version 2
    assert svc.act(CO, case.id, "sign", svc.actor(CO, "qian"), {}, 2).case.step == "explain"


def test_the_journal_names_the_item_an_action_changed(svc: CaseService) -> None:
    chen, liu = svc.actor(CO, "chen"), svc.actor(CO, "liu")
    room = {"room": "kitchen", "part": "wall", "status": "open"}
    case = svc.open_case(CO, "list-fields", chen, {"unit": "1-101", "defects": [room]}).case
    svc.act(CO, case.id, "record_defect", chen, {"defects": {**room, "part": "door"}}, 1)
    svc.act(CO, case.id, "rectify", chen, {}, 2)
    svc.act(CO, case.id, "update_defect", liu, {"defects": {"id": 2, "status": "fixed"}}, 3)
    # the whole list sent back without item 1: item 1 removed, item 2 kept with its id
    svc.act(
        CO,
        case.id,
        "update_defect",
        liu,
        {"defects": [{**room, "id": 2, "part": "door", "status": "fixed"}]},
        4,
    )
    actions = [e for e in svc.journal(CO, case.id) if e["kind"] == "action"]
    assert [e["data"].get("items") for e in actions] == [
        {"defects": {"added": [2]}},
        None,
        {"defects": {"updated": [2]}},
        {"defects": {"removed": [1]}},
    ]
    # ids are never given out twice while the list holds a larger one
    done = svc.act(CO, case.id, "update_defect", liu, {"defects": {**room, "status": "fixed"}}, 5)
    assert [d["id"] for d in done.case.fields["defects"]] == [2, 3]


def test_a_bad_item_is_refused_with_its_place(svc: CaseService) -> None:
    chen = svc.actor(CO, "chen")
    bad = [{"room": "kitchen", "part": "wall"}, {"room": "attic", "part": "wall"}]
    with pytest.raises(InvalidInput) as info:
        svc.open_case(CO, "list-fields", chen, {"unit": "1-101", "defects": bad})
    assert "item 2: room" in info.value.details["errors"]["defects"]
    too_many = [{"room": "kitchen", "part": "wall"}] * 51
    with pytest.raises(InvalidInput) as info:
        svc.open_case(CO, "list-fields", chen, {"unit": "1-101", "defects": too_many})
    assert "at most 50" in info.value.details["errors"]["defects"]


def test_the_form_describes_a_lists_items(svc: CaseService) -> None:
    proc = svc.company(CO).procedures["list-fields"]
    (field,) = form(proc, ["defects"], ["defects"])
    assert field.type == "list" and field.max_items == 50 and field.min_items is None
    assert field.items is not None
    assert [(i.name, i.type, i.required) for i in field.items] == [
        ("room", "choice", True),
        ("part", "choice", True),
        ("note", "text", False),
        ("status", "choice", False),
        ("cost", "money", False),
    ]
    assert [c.value for c in field.items[3].choices or []] == ["open", "fixed"]


def test_derived_facts_are_journaled_with_the_rule(svc: CaseService) -> None:
    zhou = svc.actor(CO, "zhou")
    fields = {"shipped_on": "2026-10-01", "found_on": "2026-10-16", "qty": 4, "unit_price": 2.5}
    case = svc.open_case(CO, "derived-values", zhou, fields).case
    (entry,) = [e for e in svc.journal(CO, case.id) if e["rule_id"]]
    assert entry["rule_id"] == "mould-within-limit-is-returned"
    assert entry["facts"]["days_to_mould"] == 15 and entry["facts"]["return_value"] == 10.0
    assert case.fields["return_kind"] == "unconditional"


def test_a_case_selector_that_matches_nothing_says_so(tmp_path: Path) -> None:
    pack = tmp_path / "rules" / "scheduled-cases"
    shutil.copytree(ROOT / "tests" / "packs" / "scheduled-cases", pack)
    path = pack / "scenarios" / "none.yaml"
    path.write_text(
        "scenario: nothing matches\n"
        "people: {liu: {roles: [sales]}}\n"
        "steps:\n"
        "  - open: {as: liu, fields: {period: 2026-10}}\n"
        "  - expect:\n"
        "      case: {procedure: scheduled-cases, fields: {period: 2026-09}}\n"
        "      status: open\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as info:
        run_scenario(path, evaluator_kind="reference")
    assert "no case #1 with procedure: scheduled-cases, period = '2026-09'" in str(info.value)
    assert "0 case(s) match of 1" in str(info.value)


def test_the_api_describes_list_items_and_journals_derived_facts(svc: CaseService) -> None:
    with svc.db.write() as conn:
        ensure_user(conn, "chen", "Chen", svc.clock.now(), password="correct horse 1")
        ensure_user(conn, "zhou", "Zhou", svc.clock.now(), password="correct horse 1")
    app = create_app(svc, auth=AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=2)))

    def login(user: str) -> TestClient[Any]:
        c = TestClient(app)
        r = c.post("/api/v1/auth/login", json={"username": user, "password": "correct horse 1"})
        assert r.status_code == 200, r.text
        return c

    chen = login("chen")
    r = chen.post("/api/v1/cases", json={"procedure": "list-fields", "fields": {"unit": "1"}})
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    actions = chen.get(f"/api/v1/cases/{case['id']}/actions").json()
    record = next(a for a in actions if a["name"] == "record_defect")
    (defects,) = record["form"]
    assert defects["type"] == "list" and defects["max_items"] == 50
    assert [(i["name"], i["required"]) for i in defects["items"]][:2] == [
        ("room", True),
        ("part", True),
    ]
    one = {"defects": {"room": "kitchen", "part": "wall", "status": "open"}}
    r = chen.post(
        f"/api/v1/cases/{case['id']}/actions/record_defect",
        json={"fields": one, "expected_version": case["version"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["case"]["fields"]["defects"] == [{"id": 1, **one["defects"]}]
    journal = chen.get(f"/api/v1/cases/{case['id']}/journal").json()
    assert journal[-1]["data"]["items"] == {"defects": {"added": [1]}}

    zhou = login("zhou")
    fields = {"shipped_on": "2026-10-01", "found_on": "2026-10-16"}
    r = zhou.post("/api/v1/cases", json={"procedure": "derived-values", "fields": fields})
    assert r.status_code == 201, r.text
    journal = zhou.get(f"/api/v1/cases/{r.json()['case']['id']}/journal").json()
    facts = next(e["facts"] for e in journal if e["rule_id"])
    assert facts["days_to_mould"] == 15 and facts["found_on"] == "2026-10-16"


def test_an_item_id_is_a_whole_number(svc: CaseService) -> None:
    chen = svc.actor(CO, "chen")
    room = {"room": "kitchen", "part": "wall"}
    case = svc.open_case(CO, "list-fields", chen, {"unit": "1", "defects": [room]}).case
    for bad in (True, "1", 1.5):
        with pytest.raises(InvalidInput) as info:
            svc.act(CO, case.id, "record_defect", chen, {"defects": {"id": bad, "note": "x"}}, 1)
        assert "no item" in info.value.details["errors"]["defects"]


def test_actor_roles_include_roles_held_through_a_department(svc: CaseService) -> None:
    li, he = svc.actor(CO, "li"), svc.actor(CO, "he")
    assert "quality_manager" not in he.roles  # not on the person: through quality
    case = svc.open_case(CO, "four-eyes", li, {"summary": "渗漏", "tracker": "zhao"}).case
    done = svc.act(CO, case.id, "fill", he, {"cause": "压力不足"}, 1)
    assert done.fired == ["filled-by-a-manager"]
    assert done.case.fields["filled_by_manager"] is True
