"""Case numbers (the numbering plugin): company formats; no gaps, no duplicates when concurrent."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from core.cases.service import CaseService
from core.errors import Refused
from core.runtime.plugins import installed
from core.spec.catalog import load_catalog
from tests.helpers import FIXTURES

HERE = FIXTURES / "dispatch"


pytestmark = pytest.mark.service(rules=HERE / "rules", config=HERE / "config")


def test_concurrent_openings_get_gap_free_unique_numbers(svc: CaseService) -> None:
    """8 threads open 25 cases each; every 5th is refused by a rule after its number was drawn."""
    amy = svc.actor("acme", "amy")
    numbers: list[str] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def opener(n: int) -> None:
        start.wait()
        for i in range(25):
            mode = "refuse" if i % 5 == 4 else "rr"
            try:
                case = svc.open_case("acme", "field-service", amy, {"mode": mode}).case
            except Refused:
                with lock:
                    refused.append(n)
            except BaseException as exc:  # collected: the assertion below names it
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    numbers.append(case.number)

    threads = [threading.Thread(target=opener, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(refused) == 8 * 5
    year = svc.clock.now().year
    # the refused openings gave their numbers back: 160 cases numbered 1…160, each once
    assert sorted(numbers) == [f"FS-{year}-{n:05d}" for n in range(1, 161)]


def test_unknown_number_scheme_is_named_at_load(tmp_path: Any) -> None:

    config = tmp_path / "config"
    config.mkdir()
    text = (HERE / "config" / "acme.yaml").read_text(encoding="utf-8")
    (config / "acme.yaml").write_text(
        text.replace(
            'numbering: "FS-{yyyy}-{seq:05}"',
            'numbering: "FS-{yyyy}-{seq:05}"\n    number_scheme: paterns',
        ),
        encoding="utf-8",
    )
    cat = load_catalog(HERE / "rules", config, extensions=installed())
    errors = [d.format() for d in cat.diagnostics.errors]
    assert len(errors) == 1
    assert (
        "K603 procedures.field-service.number_scheme: unknown case-number scheme 'paterns'"
        in errors[0]
    )
    assert "did you mean 'pattern'?" in errors[0]
