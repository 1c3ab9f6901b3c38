"""The OpenAPI UI at ``/schema`` works without the internet: every file the page loads comes
from this server (Swagger UI from an installed package), none from a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.storage.db import Database
from core.storage.migrate import upgrade
from tests.helpers import FIXTURES, service

KINDS = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
def anon(tmp_path: Path) -> Iterator[TestClient[Any]]:
    db = Database(f"sqlite:///{tmp_path / 'kefu.db'}")
    upgrade(db)
    svc = service(db, config=FIXTURES / "config-two")
    yield TestClient(create_app(svc), base_url="http://testserver.local")
    svc.close()
    db.dispose()


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_openapi_ui_loads_nothing_from_outside(anon: TestClient[Any], path: str) -> None:
    page = anon.get(path)  # no credentials needed
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    hosts = set(re.findall(r"https?://([^/\s\"'<>]+)", page.text))
    assert hosts <= {"testserver.local"}, f"the page refers to outside hosts: {hosts}"
    assets = re.findall(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", page.text)
    assert {Path(a).suffix for a in assets} >= {".js", ".css"}, assets
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url
        r = anon.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith(KINDS[Path(url).suffix]), (url, r.headers)
        assert r.content


def test_the_bundled_swagger_ui_renders_this_openapi_version(anon: TestClient[Any]) -> None:
    """Swagger UI 4 answers an OpenAPI 3.1 document with "Unable to render this definition";
    the bundled one must know the version the schema declares."""
    version = anon.get("/schema/openapi.json").json()["openapi"]
    page = anon.get("/schema").text
    [bundle] = re.findall(r"""src=["']([^"']*swagger-ui-bundle\.js)["']""", page)
    js = anon.get(bundle).text
    if version.startswith("3.1."):
        assert "isOAS31" in js, "this Swagger UI cannot show an OpenAPI 3.1 document"
    else:
        assert version.startswith("3.0."), version
