"""The pages' text input for attachment fields (until a file widget replaces it): it shows
the stored files as their upload ids and reads them back, so a table of items with photos
(收楼 第四步, each defect's photos) can be sent again unchanged."""

from __future__ import annotations

import datetime as dt

from api.web.widgets import MISSING, widget_for
from core.spec.definitions import FieldDef

UTC = dt.UTC


def test_stored_files_show_as_ids_and_read_back() -> None:
    many = FieldDef.model_validate({"type": "attachment", "label": "照片", "multiple": True})
    one = FieldDef.model_validate({"type": "attachment", "label": "纪要"})
    w = widget_for(many)
    stored = [
        {"id": 12, "sha256": "ab", "name": "a.png"},
        {"id": 13, "sha256": "cd", "name": "b.png"},
    ]
    assert w.show(many, stored, UTC) == "12, 13"
    assert w.read(many, "f.photos", {"f.photos": ["12, 13"]}, UTC) == ["12", "13"]
    assert w.show(one, {"id": 7, "name": "m.pdf"}, UTC) == "7"
    assert w.read(one, "f.minutes", {"f.minutes": ["7"]}, UTC) == "7"
    assert w.show(many, None, UTC) == ""
    assert w.read(many, "f.photos", {"f.photos": [" "]}, UTC) is MISSING
