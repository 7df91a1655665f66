"""The growth flamegraph and the report show the sites in a browser with no network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.plugin.test_where import LEAK_LINE, LEAKY

pytest.importorskip("memray")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")

#: The browser's own background traffic (updates, sync, spelling), not the page's.
BACKGROUND = re.compile(r"^https?://([a-z0-9.-]+\.)?(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)/")


def render_offline(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The page's DOM after load, and every URL it asked the network for (all fail here:
    the proxy is a closed port and every host name resolves to nothing)."""
    netlog = tmp_path / f"{page.stem}.netlog.json"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--log-net-log={netlog}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    urls = sorted(set(re.findall(r'"url":"([^"]+)"', netlog.read_text()))) if netlog.exists() else []
    return proc.stdout, [u for u in urls if not BACKGROUND.match(u) and not u.startswith(("file:", "data:"))]


def test_flamegraph_and_report_render_the_sites_offline(pytester, tmp_path):
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    assert result.ret == 1
    root = ET.parse(Path(pytester.path) / "junit.xml").getroot()
    props = {p.get("name", ""): p.get("value", "") for p in root.iter("property")}

    flamegraph = Path(props["leak_growth_flamegraph_file"])
    dom, requests = render_offline(flamegraph, tmp_path)
    assert LEAK_LINE in dom and "HELD.append(bytearray" in dom
    assert requests == []

    report = Path(props["leak_report"])
    if not report.exists():
        pytest.skip("the HTML report was not written by this build")
    dom, requests = render_offline(report, tmp_path)
    assert requests == []
    verdict = report.with_name("verdict.json")
    if verdict.exists():
        assert LEAK_LINE in json.dumps(json.loads(verdict.read_text()))
    assert LEAK_LINE in dom, "the report page does not show the growing sites"
