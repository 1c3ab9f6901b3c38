"""Pack scenarios as pytest items: ``rules/<pack>/scenarios/*.yaml``.

Each scenario file becomes four items, ``<file>::<engine>-<database>`` for the engines
durable and reference and the databases sqlite and pg (``-m "not pg"`` leaves PostgreSQL
out). A failing item reports the scenario's ``file:line`` and what was expected and
found, not a traceback; its location (what junit XML and IDEs show) is the line of the
failing step, or the scenario's first line. PostgreSQL is the session database of
tests/pg.py, emptied before each item; SQLite is a fresh file per item. Rule evaluators
are shared by the session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest rules` alone does not put the project root on sys.path
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("KEFU_PASSWORD_HASH", "fast")  # as tests/conftest.py: cheap argon2

from core.rules.evaluator import Evaluator, make_evaluator  # noqa: E402  # needs the path set above
from core.testing.scenarios import (  # noqa: E402  # needs the path set above
    SCENARIO_DIR,
    ScenarioError,
    ScenarioFailed,
    ScenarioInvalid,
    load_scenario,
    run_scenario,
)
from tests import pg, requires  # noqa: E402  # needs the path set above

ENGINES = ("durable", "reference")
DATABASES = ("sqlite", "pg")
_EVALUATORS = pytest.StashKey[dict[str, Evaluator]]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if (
        file_path.suffix in (".yaml", ".yml")
        and file_path.parent.name == SCENARIO_DIR
        and (file_path.parent.parent / "procedure.yaml").is_file()
    ):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def evaluator(config: pytest.Config, kind: str) -> Evaluator:
    """One evaluator per kind for the whole session (a durable one is a child process)."""
    if _EVALUATORS not in config.stash:
        evaluators: dict[str, Evaluator] = {}
        config.stash[_EVALUATORS] = evaluators

        def close() -> None:
            for ev in evaluators.values():
                ev.close()

        config.add_cleanup(close)
    evaluators = config.stash[_EVALUATORS]
    if kind not in evaluators:
        evaluators[kind] = make_evaluator(kind)
    return evaluators[kind]


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        for engine in ENGINES:
            for database in DATABASES:
                item = ScenarioItem.from_parent(
                    self, name=f"{engine}-{database}", engine=engine, database=database
                )
                if database == "pg":
                    item.add_marker(pytest.mark.pg)
                yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, engine: str, database: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.database = database

    def runtest(self) -> None:
        if self.engine == "durable":
            requires.durable()
        scenario = load_scenario(self.path, display_root=self.config.rootpath)
        ev = evaluator(self.config, self.engine)
        if self.database == "sqlite":
            run_scenario(scenario, evaluator=ev)
            return
        db = pg.fresh(self.config)
        try:
            run_scenario(scenario, evaluator=ev, db=db)
        finally:
            db.dispose()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        domain = f"scenario {self.path.name} [{self.engine}, {self.database}]"
        return self.path, _first_line(self.path), domain

    def failing_line(self, exc: BaseException) -> int | None:
        """The 0-based line of this scenario file that ``exc`` names, if it names one."""
        if isinstance(exc, ScenarioFailed):
            named = [exc.where.rpartition(":")[::2]]
        elif isinstance(exc, ScenarioInvalid):  # the first problem in this file
            named = [(d.file, str(d.line)) for d in exc.diagnostics]
        else:
            return None
        mine = self.path.resolve()
        for file, line in named:
            if line.isdigit() and (self.config.rootpath / file).resolve() == mine:
                return int(line) - 1
        return None


def _first_line(path: Path) -> int:
    """The 0-based line where the scenario starts: its first line that is not a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    return next((i for i, x in enumerate(lines) if x.strip() and not x.startswith("#")), 0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing scenario item is located at the step that failed."""
    report = yield
    if isinstance(item, ScenarioItem) and call.excinfo is not None:
        line = item.failing_line(call.excinfo.value)
        if line is not None:
            report.location = (report.location[0], line, report.location[2])
    return report
