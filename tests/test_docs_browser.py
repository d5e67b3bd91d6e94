"""End to end in headless Chromium: /docs on a running service, with the network cut, logs in through the
Authorize dialog (OAuth2 password flow) and runs "Try it out" on GET /api/v1/auth/me.

Chromium is driven over the DevTools protocol with the `websockets` client the service already installs
(no webdriver). Skipped when Debian's chromium is not installed (`apt-get install chromium`; .ci/run does it).
Screenshots are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_service import DEMO_PASSWORD, stop, wait_until

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEMO_USER = "city_admin"  # app/demo/platform.py

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
    reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) to run the "
           "browser test of /docs",
)


@pytest.fixture(scope="module")
def service(live_service: str) -> str:
    """The seeded service under uvicorn on a free loopback port (tests/live_service.py, shared by the session)."""
    return live_service


class DevTools:
    """The few DevTools-protocol calls the test needs, over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 30) -> Any:
        return wait_until(lambda: self.js(expression), timeout, what)

    def click(self, selector: str, what: str) -> None:
        self.wait(f"!!document.querySelector({json.dumps(selector)})", what)
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def type_into(self, selector: str, text: str) -> None:
        self.wait(f"!!document.querySelector({json.dumps(selector)})", selector)
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        return path

    def foreign_requests(self, base: str) -> dict[str, str | None]:
        """Every request of the page to another origin, with why it failed (None if it was answered)."""
        self.js("1")  # drain pending events
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"}
        failed = {e["params"]["requestId"]: e["params"].get("blockedReason") or e["params"].get("errorText")
                  for e in self.events if e["method"] == "Network.loadingFailed"}
        return {url: failed.get(rid) for rid, url in urls.items()
                if url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(base + "/")}

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Headless Chromium with every host but the loopback unresolvable (the offline network)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,1600",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "about:blank",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        wait_until(lambda: port_file.is_file() and port_file.read_text().strip(), 60, "Chromium's DevTools port")
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: str) -> Iterator[DevTools]:
    target = httpx.put(f"{browser}/json/new?about:blank", timeout=10).json()
    tools = DevTools(target["webSocketDebuggerUrl"])
    tools.call("Page.enable")
    tools.call("Network.enable")
    tools.call("Runtime.enable")
    try:
        yield tools
    finally:
        tools.close()
        httpx.get(f"{browser}/json/close/{target['id']}", timeout=10)


def _same_origin_only(page: DevTools, base: str) -> None:
    """Nothing is fetched from elsewhere; what a bundle hard-codes (ReDoc's logo) is refused by the page's CSP."""
    foreign = page.foreign_requests(base)
    assert all(reason == "csp" for reason in foreign.values()), f"the page reached other hosts: {foreign}"


def test_swagger_ui_logs_in_with_the_password_flow_and_tries_auth_me(service: str, page: DevTools) -> None:
    page.call("Page.navigate", url=f"{service}/docs")
    operations = page.wait("document.querySelectorAll('.opblock').length", "the operations to be listed", timeout=120)
    assert operations > 20
    assert page.js("!!document.getElementById('operations-auth-auth_me')")

    # Authorize: the OAuth2 password flow against POST /api/v1/auth/token.
    page.click("button.authorize", "the Authorize button")
    page.type_into("#oauth_username", DEMO_USER)
    page.type_into("#oauth_password", DEMO_PASSWORD)
    page.click(".modal-ux button.modal-btn.auth.authorize", "the dialog's Authorize button")
    page.wait("[...document.querySelectorAll('.modal-ux button')].some(b => b.textContent.trim() === 'Logout')",
              "the dialog to show the user as authorised")
    assert not page.js("!!document.querySelector('.modal-ux .errors')"), page.js(
        "document.querySelector('.modal-ux .errors').innerText")
    page.click(".modal-ux button.btn-done", "the dialog's Close button")

    # Try it out on GET /api/v1/auth/me.
    page.click("#operations-auth-auth_me button.opblock-summary-control", "the auth_me operation")
    page.click("#operations-auth-auth_me .try-out__btn", "Try it out")
    page.click("#operations-auth-auth_me button.execute", "Execute")
    status = page.wait(
        "(document.querySelector('#operations-auth-auth_me .live-responses-table tr.response "
        ".response-col_status') || {}).textContent", "the live response")
    body = page.js("document.querySelector('#operations-auth-auth_me .live-responses-table "
                   "tr.response .response-col_description').innerText")
    page.js("document.querySelector('#operations-auth-auth_me .live-responses-table').scrollIntoView()")
    page.screenshot("docs-authorized-auth-me.png")
    assert status.strip() == "200", body
    assert f'"username": "{DEMO_USER}"' in body
    assert "Bearer" in page.js("document.querySelector('#operations-auth-auth_me .curl-command').innerText")
    _same_origin_only(page, service)


def test_redoc_renders_offline(service: str, page: DevTools) -> None:
    page.call("Page.navigate", url=f"{service}/redoc")
    count = page.wait("document.querySelectorAll('[data-section-id^=\"operation/\"]').length",
                      "ReDoc to render the operations", timeout=120)
    assert count > 20
    assert page.js("document.body.innerText.includes('Who am I')")
    page.screenshot("redoc.png")
    _same_origin_only(page, service)
