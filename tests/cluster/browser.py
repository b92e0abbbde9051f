"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, with aiohttp's WebSocket client.

No test functions here. :class:`Chromium` is one browser process with a fresh profile; :meth:`Chromium.page`
opens a tab that navigates, evaluates JavaScript, waits for a condition and takes full-page screenshots. Every
JavaScript exception and console error the page raises is collected, so a test can insist there were none.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podium_localcluster.redis_server import free_port

# What the project asks of every headless Chromium it starts: no network of its own, no first-run work.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
)


class PageError(AssertionError):
    pass


class Page:
    """One tab: DevTools commands over its WebSocket; events it sends are kept for inspection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.waiting:
                self.waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(str((details.get("exception") or {}).get("description") or details.get("text")))
            elif data.get("method") == "Runtime.consoleAPICalled" and data["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in data["params"]["args"]))
            elif data.get("method") == "Log.entryAdded" and data["params"]["entry"]["level"] == "error":
                entry = data["params"]["entry"]
                self.errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[msg_id] = future
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise PageError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result") or {}
        return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise PageError(f"{expression!r} raised: {reply['exceptionDetails'].get('text')}")
        return reply.get("result", {}).get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, what: str, expression: str, within: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; fail naming ``what``, its last value, page errors."""
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except PageError as exc:  # mid-navigation the context can vanish; try again
                last = str(exc)
            else:
                if value:
                    return value
                last = value
            await asyncio.sleep(0.2)
        raise PageError(f"timed out after {within}s waiting for {what}; last: {last!r}; page errors: {self.errors}")

    async def count(self, selector: str) -> int:
        return int(await self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length"))

    async def texts(self, selector: str) -> list[str]:
        found = await self.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")
        return list(found or [])

    async def resize(self, width: int, height: int) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)  # fmt: skip

    async def screenshot(self, width: int = 1400) -> bytes:
        """The whole page (not just the window) as PNG."""
        height = int(await self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        await self.resize(width, height)
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await self.resize(width, 900)
        return base64.b64decode(shot["data"])

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class Chromium:
    """One headless Chromium with a fresh profile, listening for DevTools on a loopback port."""

    def __init__(self, binary: str = "chromium") -> None:
        found = shutil.which(binary)
        if found is None:
            pytest.fail("chromium is not installed: run scripts/setup.sh (Debian package chromium)")
        self.binary = found
        self.port = free_port()
        self.profile = Path(tempfile.mkdtemp(prefix="podium-chromium-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Chromium:
        args = [self.binary, *FLAGS, f"--remote-debugging-port={self.port}", f"--user-data-dir={self.profile}",
                "--window-size=1400,900", "about:blank"]  # fmt: skip
        self.log = (self.profile / "chromium.log").open("wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"chromium exited: {(self.profile / 'chromium.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"chromium did not open its DevTools port in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    @asynccontextmanager
    async def page(self, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
        """A new tab, closed afterwards."""
        devtools = f"http://127.0.0.1:{self.port}/json"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.put(f"{devtools}/new?about:blank") as response:
                target = await response.json(content_type=None)
            ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 << 20)
            page = Page(ws)
            try:
                for domain in ("Page", "Runtime", "Log"):
                    await page.send(f"{domain}.enable")
                await page.resize(width, height)
                yield page
            finally:
                await page.close()
                async with session.get(f"{devtools}/close/{target['id']}"):
                    pass
