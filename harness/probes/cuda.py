"""torch CUDA memory. torch is never imported here: the probe reads it only if the code
under test already imported it."""

from __future__ import annotations

import sys
from typing import Any


class CudaProbe:
    """torch.cuda allocated / reserved and their per-interval peaks.

    Present only where the code under test imported torch and CUDA is available: the
    harness never imports torch itself. Peaks are reset after each read, so each sample's
    max_* is the peak of its own interval (what incident 1's team asked for).
    """

    def __init__(self, torch_module: Any, device: int = 0) -> None:
        self._cuda = torch_module.cuda
        self._device = device

    @classmethod
    def available(cls) -> CudaProbe | None:
        torch_module = sys.modules.get("torch")
        if torch_module is None:
            return None
        try:
            if not torch_module.cuda.is_available():
                return None
        except Exception:  # a broken CUDA install must not break recording
            return None
        return cls(torch_module)

    def read(self) -> dict[str, int]:
        cuda = self._cuda
        values = {
            "cuda_allocated": int(cuda.memory_allocated(self._device)),
            "cuda_reserved": int(cuda.memory_reserved(self._device)),
            "cuda_max_allocated": int(cuda.max_memory_allocated(self._device)),
            "cuda_max_reserved": int(cuda.max_memory_reserved(self._device)),
        }
        cuda.reset_peak_memory_stats(self._device)
        return values
