"""What a signature vouches for (``core.cases.signatures.covered``): whole fields, and
``list.field`` — one field of a list's items, with the items' ids."""

from __future__ import annotations

import hashlib
import json

from core.cases.signatures import covered, fields_hash


def test_what_an_item_field_cover_vouches_for() -> None:
    items = [{"id": 1, "what": "换模具", "owner": "li", "done": False}, {"id": 3, "what": "校准"}]
    covers = ["actions.what", "actions.owner", "note"]
    assert covered(covers, {"actions": items, "note": "x"}) == {
        "actions": [
            {"id": 1, "what": "换模具", "owner": "li"},
            {"id": 3, "what": "校准", "owner": None},
        ],
        "note": "x",
    }
    ticked = [{**items[0], "done": True}, items[1]]
    assert fields_hash(covers, {"actions": items}) == fields_hash(covers, {"actions": ticked})
    renumbered = [items[0], {**items[1], "id": 2}]
    assert fields_hash(covers, {"actions": items}) != fields_hash(covers, {"actions": renumbered})
    # naming the whole list too: the whole list counts
    assert covered(["actions", "actions.what"], {"actions": items}) == {"actions": items}
    # whole fields hash as they always did (signatures already stored stay valid)
    doc = {"cause": "模具", "qty": 2}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert (
        fields_hash(["cause", "qty"], {**doc, "qty": 2.0})
        == hashlib.sha256(text.encode()).hexdigest()
    )
