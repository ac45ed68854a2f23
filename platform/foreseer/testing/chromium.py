"""Headless Chromium driven over the Chrome DevTools protocol on a pipe: no driver binary, no
websocket library, no browser download. Used by the browser test (``tests/foreseer/test_ui_browser.py``)
and ``benchmarks/tracking.py``.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from fd 3 and writes
replies and events to fd 4, each a JSON message ending in a NUL byte.

    with Chromium(profile_dir) as browser:
        page = browser.new_page()
        page.navigate("http://127.0.0.1:5000/#/experiments/1/runs")
        page.wait_for("document.body.innerText.includes('my-run')")
        page.screenshot("shot.png")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    """Debian's Chromium, or whatever ``chromium``/``chromium-browser`` is on the PATH."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium process in a session of its own, stopped with everything it started."""

    def __init__(self, profile_dir: str | Path, executable: str | None = None, timeout: float = 60.0) -> None:
        self.executable = executable or chromium_path()
        if self.executable is None:
            raise BrowserError("no chromium on the PATH")
        self.profile_dir = Path(profile_dir)
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Chromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds_3_and_4() -> None:  # in the child, before exec
            high_r, high_w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds_3_and_4,
            pass_fds=(3, 4),
            start_new_session=True,  # noqa: PLW1509
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.send("Browser.getVersion")
        return self

    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        """One protocol command; its result, events in between skipped."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise BrowserError(f"{method}: no reply within {self.timeout:.0f} s")

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the protocol pipe (it exited)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # renderers, GPU and zygote processes too
        except ProcessLookupError:
            pass
        self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self.process = None

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Page:
    """One tab, through its protocol session."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session_id)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.1) -> float:
        """Poll until ``expression`` is truthy in the page; the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.evaluate(expression):
                    return time.monotonic() - started
            except BrowserError:
                pass  # the page is between documents
            time.sleep(interval)
        raise BrowserError(f"not true within {timeout:.0f} s: {expression}")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
