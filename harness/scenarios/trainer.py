"""A small PyTorch trainer that consumes replay batches the way incident 1's did.

Batches go numpy -> ``torch.from_numpy`` (shares memory) -> ``.to(device,
non_blocking=True)`` (an asynchronous copy that holds the CPU tensor until it completes).
Variants:

- ``"fixed"``: copy the window before handing it to torch, so nothing downstream
  shares memory with a stored episode; the pending-transfer queue is drained after each
  step; the loss is accumulated with ``.item()``.
- ``"view_leak"``: batches are built from views of stored episodes and each pending
  transfer (view, tensor) is queued in ``_inflight``, which is never drained. Every view
  keeps its whole episode alive after eviction: zombie episodes.
- ``"loss_leak"``: the loss logged after each update (what a dashboard plots) is computed
  without ``torch.no_grad()`` and accumulated as a tensor (``total = total + loss``). No
  backward ever runs on that graph, so every step's graph stays alive with the batch and
  activations it saved (~400 KB a step here). The fix is ``.item()`` (and ``no_grad``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.scenarios.replay import EpisodeReplay

VARIANTS = ("fixed", "view_leak", "loss_leak")


class Trainer:
    def __init__(
        self,
        obs_shape: tuple[int, ...] = (32, 32, 3),
        variant: str = "fixed",
        hidden: int = 32,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
        torch.manual_seed(seed)
        self.variant = variant
        self.device = torch.device(device)
        # Frames are downsampled 2x in each spatial dimension before the model (as Atari
        # agents do), which keeps a CPU step cheap while the buffer stores full frames.
        self._stride = 2 if len(obs_shape) == 3 else 1
        in_dim = int(np.prod(self._downsampled(obs_shape)))
        self.model = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 6)).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self._inflight: deque[tuple[Any, torch.Tensor]] = deque()
        self.total_loss: Any = 0.0
        self.steps = 0

    def _downsampled(self, obs_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self._stride == 1:
            return obs_shape
        h, w, c = obs_shape
        return (-(-h // self._stride), -(-w // self._stride), c)

    def _to_device(self, window: np.ndarray) -> torch.Tensor:
        if self.variant == "view_leak":
            cpu = torch.from_numpy(window)  # shares memory with the stored episode
            keep: Any = window
        else:
            cpu = torch.from_numpy(window.copy())  # the copy breaks the chain
            keep = None
        gpu = cpu.to(self.device, non_blocking=True)
        self._inflight.append((keep, cpu))
        return gpu

    def train_step(self, buffer: EpisodeReplay, batch: int = 16, length: int = 8) -> float:
        windows = buffer.sample_views(batch, length)
        obs = torch.stack([self._to_device(w["obs"]) for w in windows])
        if self._stride > 1:
            obs = obs[:, :, :: self._stride, :: self._stride]
        obs = obs.float().div_(255.0)
        actions = torch.stack([self._to_device(w["action"]) for w in windows])
        logits = self.model(obs.flatten(2))
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), actions.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.opt.step()
        if self.variant != "view_leak":
            # The transfers above are complete once the step has consumed them.
            self._inflight.clear()
        # The loss after the update, for the logs.
        if self.variant == "loss_leak":
            logged = nn.functional.cross_entropy(self.model(obs.flatten(2)).flatten(0, 1), actions.flatten())
            self.total_loss = self.total_loss + logged  # keeps this step's graph, and its inputs, alive
        else:
            with torch.no_grad():
                logged = nn.functional.cross_entropy(self.model(obs.flatten(2)).flatten(0, 1), actions.flatten())
            self.total_loss += logged.item()
        self.steps += 1
        return float(loss.detach())
