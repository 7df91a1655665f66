"""A tiny Chrome DevTools Protocol client: open a page in headless Chromium with the network
off, and report what a person would see (console errors, failed or outside requests, DOM
facts, a screenshot). Needs ``chromium`` on PATH and the ``websocket-client`` package."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)  # anything not file: or data:
    facts: dict[str, Any] = field(default_factory=dict)


class Browser:
    def __init__(self) -> None:
        import websocket  # websocket-client

        assert CHROMIUM is not None, "chromium is not installed"
        self._profile = tempfile.mkdtemp(prefix="leak-browser-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its zygote, renderer and utility processes: one group to stop
        )
        url = None
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                url = match.group(1)
                break
            if not line and self.proc.poll() is not None:
                break
        if not url:
            self.proc.kill()
            self.proc.wait()
            self.proc.stderr.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self.session, **params)

    def visit(self, path: Path, checks: dict[str, str], screenshot: Path | None = None, width: int = 1280) -> PageVisit:
        """Load ``path`` offline; evaluate each JS expression of ``checks``; optionally screenshot."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page(f"{domain}.enable")
        self.page(
            "Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1
        )
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.page("Page.navigate", url=path.resolve().as_uri())
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, "the page did not finish loading"
            self.events.append(json.loads(self.ws.recv()))
        visit = PageVisit()
        for expr_name, expr in checks.items():
            result = self.page("Runtime.evaluate", expression=expr, returnByValue=True)
            visit.facts[expr_name] = result.get("result", {}).get("value")
        if screenshot is not None:
            height = self.page(
                "Runtime.evaluate", expression="document.documentElement.scrollHeight", returnByValue=True
            )
            full = int(height["result"]["value"])
            self.page("Emulation.setDeviceMetricsOverride", width=width, height=full, deviceScaleFactor=1, mobile=False)
            shot = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                visit.console_errors.append(str(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                visit.console_errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                visit.console_errors.append(str(params["entry"].get("text")))
            elif method == "Network.loadingFailed":
                visit.failed_requests.append(f"{params.get('errorText')} {params.get('requestId')}")
            elif method == "Network.requestWillBeSent":
                url = str(params.get("request", {}).get("url", ""))
                if not url.startswith(("file:", "data:", "about:")):
                    visit.outside_requests.append(url)
        return visit

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self._stop_group()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self._remove_profile()

    def _stop_group(self) -> None:
        """Stop Chromium and every process it started (they share its process group): a
        renderer or utility process outliving the browser kept writing into the profile."""
        group = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # stragglers; a zombie left unreaped writes nothing

    def _remove_profile(self) -> None:
        # A killed process's last writes may still land for a moment: "Directory not empty:
        # 'Default'" once failed a test's teardown. Retry, then leave the rest to the OS.
        for _ in range(50):
            try:
                shutil.rmtree(self._profile)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(self._profile, ignore_errors=True)
