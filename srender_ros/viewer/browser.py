"""Headless Chromium over the DevTools protocol: load a page, wait for its text, take a screenshot.

Used by the viewer's browser test and by ``scripts/viewer_screenshots.py`` for the docs. No
browser driver package: Chromium is started with ``--remote-debugging-port=0`` and spoken to
over one WebSocket (``websockets``, installed with viser). WebGL runs on SwiftShader (software),
so this works on machines without a GPU.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from srender_ros.errors import BackendUnavailableError, SrenderError

#: Binary names tried in order when no path is given.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of an installed Chromium/Chrome (``$SRENDER_CHROMIUM`` first), or None."""
    env = os.environ.get("SRENDER_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class HeadlessPage:
    """One headless Chromium with one page, driven over CDP. Use as a context manager.

    Args:
        width, height: viewport, CSS pixels.
        chromium: browser binary (default :func:`find_chromium`).
    Raises:
        BackendUnavailableError: no Chromium installed (``apt-get install chromium``).
    """

    def __init__(self, width: int = 1280, height: int = 800, chromium: str | None = None) -> None:
        binary = chromium or find_chromium()
        if binary is None:
            raise BackendUnavailableError("no Chromium found; install it (Debian: apt-get install chromium) "
                                          "or set SRENDER_CHROMIUM to its path")
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="srender-chromium-")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu-sandbox", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
                "--enable-webgl", f"--window-size={width},{height}", f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0", "about:blank"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        try:
            port_file = Path(self._profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30.0
            while not (port_file.exists() and port_file.read_text().strip()):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise SrenderError(f"{binary} did not start its DevTools endpoint (exit {self._proc.poll()})")
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            self._ws = connect(f"ws://127.0.0.1:{port}{self._page_path(port)}", max_size=64 * 1024 * 1024,
                               open_timeout=10)
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _page_path(port: int) -> str:
        import urllib.request

        deadline = time.monotonic() + 10.0
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = json.loads(r.read().decode())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"]).split(f":{port}", 1)[1]
            if time.monotonic() > deadline:
                raise SrenderError("Chromium has no page target")
            time.sleep(0.1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events in between are skipped)."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise SrenderError(f"Chromium {method}: {reply['error'].get('message')}")
                return dict(reply.get("result", {}))

    def goto(self, url: str) -> None:
        """Navigate to ``url`` (returns once navigation started; use :meth:`wait_for` for content)."""
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression in the page (JSON-able values only)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise SrenderError(f"page script failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def body_text(self) -> str:
        """The page's visible text (``document.body.innerText``)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for(self, expression: str, timeout_s: float = 60.0, poll_s: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value.

        Raises:
            TimeoutError: still falsy after ``timeout_s`` (the page text is in the message).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page did not satisfy {expression!r} within {timeout_s:.0f} s; "
                                   f"its text: {self.body_text()[:300]!r}")
            time.sleep(poll_s)

    def dismiss_notices(self) -> int:
        """Close the page's notification boxes (e.g. viser's 'Software WebGL rendering detected'); returns how many."""
        return int(self.evaluate("(() => { const b = document.querySelectorAll('.mantine-Notification-closeButton');"
                                 " b.forEach(x => x.click()); return b.length; })()") or 0)

    def screenshot(self, path: Path | str) -> Path:
        """Write the viewport as PNG to ``path``."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        """Stop the browser and delete its profile."""
        ws = getattr(self, "_ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # the browser may already be gone
                pass
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> HeadlessPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
