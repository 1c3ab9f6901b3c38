"""The attachment widget's reading of a form: which upload ids it sends, and when it sends
nothing (the case keeps its files). The ids it reads are plain: api.web.uploads has
checked the signed ones the form carried and stored the chosen files."""

from __future__ import annotations

import datetime as dt

from api.web import uploads
from api.web.widgets import read_form
from core.spec.definitions import FieldDef

PHOTOS = FieldDef.model_validate(
    {"type": "attachment", "multiple": True, "label": {"zh-CN": "照片"}}
)
MINUTES = FieldDef.model_validate({"type": "attachment", "label": {"zh-CN": "纪要"}})
FIELDS = {"photos": PHOTOS, "minutes": MINUTES}


def read(**typed: list[str]) -> dict[str, object]:
    form = {"f." + k.replace("__", "."): v for k, v in typed.items()}
    return read_form(FIELDS, ["photos", "minutes"], form, dt.UTC)


def test_a_multiple_field_sends_the_kept_files_and_the_new_ones() -> None:
    # the form showed files 3 and 4; nothing changed: nothing is sent
    assert read(photos___had=["3,4"], photos__keep=["3", "4"]) == {}
    # one more file: the kept ones and the new one
    assert read(photos___had=["3,4"], photos__keep=["3", "4"], photos__new=["9"]) == {
        "photos": ["3", "4", "9"]
    }
    # a box unticked: that file goes
    assert read(photos___had=["3,4"], photos__keep=["4"]) == {"photos": ["4"]}
    # every box unticked: the field is emptied
    assert read(photos___had=["3,4"]) == {"photos": []}
    # a field with no files yet and none chosen: nothing
    assert read(photos___had=[""]) == {}


def test_a_single_field_takes_the_latest_file_chosen() -> None:
    assert read(minutes___had=["5"]) == {}
    assert read(minutes___had=["5"], minutes__new=["7", "8"]) == {"minutes": "8"}


def test_upload_tokens_are_bound_to_the_browsers_secret() -> None:
    secret = "s" * 43
    signed = uploads.token(secret, 12)
    assert uploads.untoken(secret, signed) == 12
    assert uploads.untoken("t" * 43, signed) is None  # another browser's form
    assert uploads.untoken(secret, "13" + signed[2:]) is None  # another id, same mac
    for junk in ("", "12", "12.", "x.y", "0." + signed.split(".")[1], "9" * 30 + ".ab"):
        assert uploads.untoken(secret, junk) is None
