"""Saved runs (``--leak-save``) under a storage directory, the way pytest-benchmark keeps them.

    <storage>/<machine id>/0001_nightly.json
    <storage>/<machine id>/0002_3f2a9c1b_20261122_023000.json     (--leak-save with no name)

One JSON file per saved run: when, commit, machine, options, and per test its outcome and
figures (``harness.reports.compare.FIGURES``). Runs are kept per machine id (system,
Python, architecture, memory) because memory figures of one machine say nothing about
another's. Numbers are allocated with an exclusive create, so two sessions saving at once
never overwrite each other (pytest-benchmark's ``_next_num`` + ``open('wb')`` can).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessUsageError

FORMAT = "leak-harness-run"
VERSION = 1
_NUM = re.compile(r"^(\d{4})_(.+)\.json$")


class Storage:
    """The saved runs of one machine id under ``root``."""

    def __init__(self, root: Path, machine_id: str) -> None:
        self.root = root
        self.machine_id = machine_id
        self.folder = root / machine_id

    def files(self) -> list[Path]:
        """Saved runs, oldest first (by their number)."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _NUM.match(p.name)]
        return sorted(found, key=lambda p: (int(_NUM.match(p.name).group(1)), p.name))  # type: ignore[union-attr]

    def save(self, data: Mapping[str, Any], name: str) -> Path:
        """Write ``data`` as the next numbered run ``NNNN_<name>.json``; returns its path."""
        if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", name):
            raise HarnessUsageError(
                f"--leak-save name {name!r} must be 1-80 letters, digits, '_', '.', '+' or '-' (it is a file name)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "version": VERSION, **data}, indent=1, sort_keys=False, default=str)
        number = self._last_number() + 1
        for _ in range(1000):
            path = self.folder / f"{number:04d}_{name}.json"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                number += 1
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return path
        raise HarnessUsageError(f"cannot allocate a run number in {str(self.folder)!r}")

    def _last_number(self) -> int:
        files = self.files()
        return int(_NUM.match(files[-1].name).group(1)) if files else 0  # type: ignore[union-attr]

    def find(self, name: str | None) -> Path | None:
        """The latest run matching ``name`` (its number "0003", its full stem, or its name
        part "nightly"), or the latest run of all when ``name`` is None or "auto"."""
        files = self.files()
        if name in (None, "", "auto"):
            return files[-1] if files else None
        assert name is not None
        matches = [
            p
            for p in files
            if p.stem == name
            or p.name == name
            or _NUM.match(p.name).group(1) == name.zfill(4)  # type: ignore[union-attr]
            or _NUM.match(p.name).group(2) == name  # type: ignore[union-attr]
        ]
        return matches[-1] if matches else None

    def load(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise HarnessUsageError(f"cannot read saved run {str(path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise HarnessUsageError(f"{str(path)!r} is not a saved leak-harness run")
        return data

    def runs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(name, data) of every readable saved run, oldest first (unreadable ones skipped)."""
        for path in self.files():
            try:
                yield path.stem, self.load(path)
            except HarnessUsageError:
                continue


def machines(root: Path) -> list[str]:
    """Machine ids that have saved runs under ``root``."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(_NUM.match(f.name) for f in p.iterdir()))
