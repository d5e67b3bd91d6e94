"""/docs and /redoc work without internet access: every asset they load comes from the service itself."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_their_own_origin(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    html = r.text
    foreign = [u for u in re.findall(r"""(?:https?:)?//[^\s'"<>)]+""", html) if urlsplit(u).netloc != "testserver"]
    assert not foreign, f"{page} loads from other hosts: {foreign}"
    assets = _asset_urls(html)
    assert len(assets) >= 2  # the script and the icon at least
    for url in assets:
        assert url.startswith("/"), url
        got = client.get(url)
        assert got.status_code == 200, url
        suffix = url[url.rfind("."):]
        assert EXPECTED_TYPES[suffix] in got.headers["content-type"], (url, got.headers["content-type"])
        assert len(got.content) > 1000, url


def test_swagger_ui_keeps_the_password_flow_and_no_public_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "'/openapi.json'" in html and '"validatorUrl": null' in html
    assert "/docs/oauth2-redirect" in html
    assert client.get("/docs/oauth2-redirect").status_code == 200
    flows = client.get("/openapi.json").json()["components"]["securitySchemes"]
    password = next(s["flows"]["password"] for s in flows.values() if s.get("type") == "oauth2")
    assert password["tokenUrl"] == "/api/v1/auth/token"


def test_switched_off_docs_serve_no_assets(monkeypatch: pytest.MonkeyPatch, db: Any) -> None:
    from app.core.config import get_settings
    from app.main import create_app

    monkeypatch.setenv("DOCS_ENABLED", "false")
    get_settings.cache_clear()
    try:
        off = TestClient(create_app(), raise_server_exceptions=False)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    for path in ("/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js", "/docs-assets/redoc.standalone.js"):
        assert off.get(path).status_code == 404, path


def test_assets_are_not_a_directory_listing_or_traversal(client: TestClient) -> None:
    for path in ("/docs-assets/", "/docs-assets/../core.py", "/docs-assets/%2e%2e/core.py", "/docs-assets/nope.js"):
        assert client.get(path).status_code == 404, path
