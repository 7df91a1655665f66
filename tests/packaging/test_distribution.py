"""The distribution as a user installs it: one top-level package, a plugin that costs nothing
until used, marker help that cannot drift from what is validated."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("leak_harness-*.whl")
    return path


def test_the_wheel_installs_harness_and_nothing_else_at_top_level(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"harness"}, top
    assert not any(name.startswith("fixtures/") for name in names)  # PyPI's `fixtures` stays intact
    assert any(name.endswith("licenses/LICENSE") for name in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    headers = zipfile.ZipFile(wheel).read(meta).decode().split("\n\n")[0]  # the README follows
    # Developer tools are a dependency group, not an extra offered to users.
    assert "Provides-Extra: dev" not in headers and "ruff" not in headers and "mypy" not in headers


def test_the_library_never_imports_the_repos_fixtures():
    for path in (ROOT / "harness").rglob("*.py"):
        text = path.read_text()
        assert "import fixtures" not in text and "from fixtures" not in text, path


def test_loading_the_plugin_imports_nothing_heavy():
    code = (
        "import sys, harness.plugin, harness\n"
        "heavy = [m for m in ('numpy', 'scipy', 'psutil', 'torch', 'memray', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_load_on_first_use():
    code = "import sys, harness\nharness.Trace\nprint('numpy' in sys.modules, harness.record.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "harness.recording.recorder"]


def test_marker_help_lists_every_argument_the_validator_accepts():
    from harness.plugin.markers import ARGUMENTS, MARKERS

    for name in ARGUMENTS:
        assert f"{name}=" in MARKERS["leak"], name
