"""A list field on the pages: an editable table (rows kept by item id, new rows, a row
removed), validated by the case service like the API; and ``kefu diagram`` writes what the
procedure page shows."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from core.cases.service import CaseService
from core.cli import cli
from core.spec.diagram import procedure_svg
from tests.helpers import FIXTURES, ROOT
from tests.web import clients, csrf

pytestmark = pytest.mark.service(
    config=FIXTURES / "language", rules=ROOT / "tests" / "packs", logins=["chen"]
)
CO = "language-test"


def signed_in(svc: CaseService) -> tuple[TestClient[Any], str]:
    c = clients(svc)("chen")
    return c, csrf(c, "/web/inbox")


def test_a_list_field_is_an_editable_table(svc: CaseService) -> None:
    c, token = signed_in(svc)
    page = c.get("/web/new/list-fields").text
    assert 'name="f.defects.0.room"' in page and 'name="f.defects.1.part"' in page
    # a row without its required part: the service's message, beside the table
    r = c.post(
        "/web/new/list-fields",
        data={"_csrf": token, "f.unit": "1-101", "f.defects.0.room": "kitchen"},
    )
    assert r.status_code == 422
    assert "part: required" in r.text
    assert '<option value="kitchen" selected>' in r.text  # the typed row stays
    r = c.post(
        "/web/new/list-fields",
        data={
            "_csrf": token,
            "f.unit": "1-101",
            "f.defects.0.room": "kitchen",
            "f.defects.0.part": "wall",
            "f.defects.0.cost": "120",
            "f.defects.1.room": "bedroom",
            "f.defects.1.part": "door",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].split("/")[-1].split("?")[0])
    items = svc.get_case(CO, cid).fields["defects"]
    assert [(i["id"], i["room"], i.get("cost")) for i in items] == [
        (1, "kitchen", 120),
        (2, "bedroom", None),
    ]
    # record_defect: keep item 1 (changed), remove item 2, add a new one
    page = c.get(f"/web/cases/{cid}").text
    assert 'name="f.defects.0.id" value="1"' in page
    r = c.post(
        f"/web/cases/{cid}/actions/record_defect",
        data={
            "_csrf": token,
            "_version": "1",
            "_seq": "1",
            "f.defects._shown": "1",
            "f.defects.0.id": "1",
            "f.defects.0.room": "kitchen",
            "f.defects.0.part": "wall",
            "f.defects.0.status": "fixed",
            "f.defects.1.id": "2",
            "f.defects.1.room": "bedroom",
            "f.defects.1.part": "door",
            "f.defects.1.remove": "1",
            "f.defects.2.room": "bathroom",
            "f.defects.2.part": "floor",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    items = svc.get_case(CO, cid).fields["defects"]
    assert [(i["id"], i["room"], i.get("status")) for i in items] == [
        (1, "kitchen", "fixed"),
        (3, "bathroom", None),
    ]


def test_kefu_diagram_writes_what_the_procedure_page_shows(svc: CaseService, tmp_path: Any) -> None:
    out = tmp_path / "d.svg"
    run = CliRunner().invoke(
        cli, ["diagram", str(ROOT / "tests" / "packs" / "list-fields"), "-o", str(out)]
    )
    assert run.exit_code == 0, run.output
    c, _ = signed_in(svc)
    shown = c.get("/web/procedures/list-fields/diagram.svg")
    assert shown.status_code == 200
    assert out.read_text(encoding="utf-8") == shown.text
    pack = svc.company(CO).procedures["list-fields"].pack
    assert shown.text == procedure_svg(pack, "zh-CN")
    for role in pack.roles:
        assert f'data-role="{role}"' in shown.text
    unknown = CliRunner().invoke(cli, ["diagram", "no-such-pack"])
    assert unknown.exit_code != 0 and "no pack 'no-such-pack'" in unknown.output
