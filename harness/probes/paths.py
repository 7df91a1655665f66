"""Short, readable file paths for allocation sites and frames."""

from __future__ import annotations

import os


def short_path(filename: str) -> str:
    cwd = os.getcwd()
    if filename.startswith(cwd + os.sep):
        return filename[len(cwd) + 1 :]
    for marker in ("site-packages" + os.sep, "lib" + os.sep + "python"):
        idx = filename.find(marker)
        if idx >= 0:
            return filename[idx + len(marker) :] if marker.startswith("site") else filename[idx:]
    return filename
