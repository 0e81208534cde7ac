"""/docs and /redoc work with no internet: assets come from the service itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ClientFactory
from tests.helpers import SEND
from tests.ops.conftest import EXIT_TIMEOUT, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_TIMEOUT = 30.0
URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")
ASSET = re.compile(r"""["'](/static/docs/[^"']+)["']""")


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {".js", ".css"}), ("/redoc", {".js"})])
async def test_docs_pages_use_only_local_assets(
    client_for: ClientFactory, page: str, kinds: set[str]
) -> None:
    async with client_for() as client:
        html = await client.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        text = html.text
        assert "http://" not in text
        assert "https://" not in text
        assert "//cdn" not in text
        references = {m.group(1) or m.group(2) for m in URL.finditer(text)}
        for reference in references:
            assert reference.startswith("/"), reference
            assert not reference.startswith("//"), reference
        assets = set(ASSET.findall(text))
        assert {Path(asset).suffix for asset in assets} >= kinds, assets
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset
            expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
            assert expected[Path(asset).suffix] in served.headers["content-type"], asset
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200
        assert "/api/v1/auth/send-verification" in spec.json()["paths"]


@pytest.mark.parametrize(
    "asset",
    [
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
        "/static/docs/favicon.png",
        "/static/docs/redoc.standalone.js",
    ],
)
async def test_docs_assets_are_cacheable(client_for: ClientFactory, asset: str) -> None:
    """Every visit to /docs would fetch ~1.5 MB again otherwise."""
    async with client_for() as client:
        served = await client.get(asset)
        assert served.status_code == 200
        assert served.headers["cache-control"] == "public, max-age=86400"
        if "etag" in served.headers:
            # A browser revalidating after a day gets 304, still cacheable.
            again = await client.get(asset, headers={"If-None-Match": served.headers["etag"]})
            assert again.status_code == 304
            assert again.headers["cache-control"] == "public, max-age=86400"


# ---------------------------------------------------------------- headless Chromium


class DevTools:
    """A page in headless Chromium, driven over the DevTools protocol (flat sessions)."""

    def __init__(self, ws: ClientConnection, session: str) -> None:
        self._ws = ws
        self._session = session
        self._next = 0
        self.requested: list[str] = []

    @classmethod
    def open(cls, ws: ClientConnection) -> DevTools:
        browser = cls(ws, "")
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)
        page = cls(ws, session["sessionId"])
        for domain in ("Network", "Page", "Runtime"):
            page.call(f"{domain}.enable")
        return page

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no answer to {method} within {BROWSER_TIMEOUT}s")
            reply = json.loads(self._ws.recv(timeout=remaining))
            if reply.get("method") == "Network.requestWillBeSent":
                self.requested.append(reply["params"]["request"]["url"])
            if reply.get("id") == self._next:
                if "error" in reply:
                    pytest.fail(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            pytest.fail(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        body = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        pytest.fail(f"{what} did not happen within {BROWSER_TIMEOUT}s; the page shows:\n{body}")


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[ClientConnection]:
    """Headless Chromium and a DevTools websocket to it; skipped where it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)")
    process = subprocess.Popen(  # noqa: S603
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = None
        seen: list[str] = []
        deadline = time.monotonic() + BROWSER_TIMEOUT
        assert process.stderr is not None
        while endpoint is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = found.group(1) if found else None
        if endpoint is None:
            pytest.fail("Chromium did not start:\n" + "".join(seen))
        with connect(endpoint, max_size=None, open_timeout=BROWSER_TIMEOUT) as ws:
            yield ws
    finally:
        process.terminate()
        try:
            process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=EXIT_TIMEOUT)


OPERATION = "#operations-auth-send_verification"


@pytest.fixture(scope="module")
def docs_server(migrated_sqlite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the console provider for the browser tests of this module."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)")
    server = Server(
        {"DATABASE_URL": migrated_sqlite, "VERIFY_PROVIDER": "console"},
        cwd=tmp_path_factory.mktemp("docs-server"),
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


def outside(server: Server, page: DevTools) -> list[str]:
    """URLs the page requested from anywhere but the service (data: URLs fetch nothing)."""
    page.evaluate("1")  # take in the events sent so far
    return [
        url
        for url in page.requested
        if not url.startswith(f"{server.base_url}/") and not url.startswith(("data:", "blob:"))
    ]


def test_swagger_ui_tries_send_verification_offline(
    chromium: ClientConnection, docs_server: Server
) -> None:
    server = docs_server
    page = DevTools.open(chromium)
    page.call("Page.navigate", url=f"{server.base_url}/docs")

    page.wait_for(f"!!document.querySelector('{OPERATION} .opblock-summary')", "the operation list")
    page.evaluate(
        f"(document.querySelector('{OPERATION} .opblock-summary-control')"
        f" || document.querySelector('{OPERATION} .opblock-summary')).click()"
    )
    page.wait_for(f"!!document.querySelector('{OPERATION} .try-out__btn')", "expanding")
    page.evaluate(f"document.querySelector('{OPERATION} .try-out__btn').click()")
    page.wait_for(f"!!document.querySelector('{OPERATION} textarea.body-param__text')", "try it")
    body = json.dumps(json.dumps({"phone": "+996 555 123 456"}))
    page.evaluate(
        f"""(() => {{
            const area = document.querySelector('{OPERATION} textarea.body-param__text');
            const setter = Object.getOwnPropertyDescriptor(
                HTMLTextAreaElement.prototype, 'value').set;
            setter.call(area, {body});
            area.dispatchEvent(new Event('input', {{bubbles: true}}));
        }})()"""
    )
    page.wait_for(f"!!document.querySelector('{OPERATION} button.execute')", "the Execute button")
    page.evaluate(f"document.querySelector('{OPERATION} button.execute').click()")
    status = page.wait_for(
        f"""(() => {{
            const cell = document.querySelector(
                '{OPERATION} .live-responses-table .response .response-col_status');
            return cell ? cell.innerText.trim() : '';
        }})()""",
        "a response",
    )
    shown = page.evaluate(f"document.querySelector('{OPERATION} .live-responses-table').innerText")
    assert status.startswith("200"), shown
    assert "+996555123456" in shown
    assert '"market": "KG"' in shown

    assert outside(server, page) == []
    for path in ("/docs", "/openapi.json", "/static/docs/swagger-ui-bundle.js", SEND):
        assert f"{server.base_url}{path}" in page.requested, path
    # The console provider "sent" the code: its line names the whole number it texted.
    server.wait_for_line(lambda line: "Console provider" in line and "+996555123456" in line)


def open_redoc(chromium: ClientConnection, server: Server) -> DevTools:
    page = DevTools.open(chromium)
    page.call("Page.navigate", url=f"{server.base_url}/redoc")
    page.wait_for(
        "!!document.body && document.body.innerText.includes('Send a login code')",
        "ReDoc rendering the API",
    )
    return page


def test_redoc_renders_offline(chromium: ClientConnection, docs_server: Server) -> None:
    page = open_redoc(chromium, docs_server)
    assert f"{docs_server.base_url}/static/docs/redoc.standalone.js" in page.requested
    assert f"{docs_server.base_url}/openapi.json" in page.requested
    text = page.evaluate("document.body.innerText")
    for operation in ("Log in with the code", "Readiness"):
        assert operation in text


def test_redoc_requests_nothing_outside_the_service(
    chromium: ClientConnection, docs_server: Server
) -> None:
    page = open_redoc(chromium, docs_server)
    deadline = time.monotonic() + 3  # images start loading just after the text renders
    while time.monotonic() < deadline and not outside(docs_server, page):
        time.sleep(0.2)
    assert outside(docs_server, page) == []
