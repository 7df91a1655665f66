"""An episode replay buffer like the one of incident 1 (Dreamer-style, capacity in steps).

Steps are added one at a time; a finished episode is stacked into numpy arrays and
stored whole. When the stored steps exceed ``capacity_steps`` the oldest episodes are
evicted, whole, first in first out. Batches are windows of ``length`` consecutive steps.

``sample`` copies (np.stack copies), which is what the incident's code did;
``sample_views`` returns views into the stored episodes, the path that keeps an evicted
episode alive if anyone holds on to a view (INCIDENTS.md, incident 1, "Note").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Episode = dict[str, np.ndarray]


@dataclass(frozen=True)
class Accounting:
    """What the buffer holds, by its own books."""

    total_steps: int
    episodes: int
    obs_bytes: int
    aux_bytes: int

    @property
    def nbytes(self) -> int:
        return self.obs_bytes + self.aux_bytes


class EpisodeReplay:
    """FIFO episode replay with a capacity in steps."""

    def __init__(
        self,
        capacity_steps: int,
        obs_shape: tuple[int, ...] = (32, 32, 3),
        obs_dtype: str = "uint8",
        seed: int = 0,
    ) -> None:
        if capacity_steps < 1:
            raise ValueError(f"capacity_steps={capacity_steps!r} must be >= 1")
        self.capacity_steps = capacity_steps
        self.obs_shape = tuple(obs_shape)
        self.obs_dtype = np.dtype(obs_dtype)
        self.episodes: deque[Episode] = deque()
        self._rng = np.random.default_rng(seed)
        self._current: dict[str, list[np.ndarray]] = {"obs": [], "action": [], "reward": [], "done": []}
        self._stored_steps = 0
        self._obs_bytes = 0
        self._aux_bytes = 0
        self._pending_obs_bytes = 0
        self._pending_aux_bytes = 0
        self.evictions = 0
        self.added_episodes = 0
        self.evicted_ids: list[int] = []
        self._next_id = 0

    # -- writing -------------------------------------------------------------------
    def add_step(self, obs: np.ndarray, action: int, reward: float, done: bool) -> list[Episode]:
        """Add one step; when ``done``, store the episode. Returns the episodes evicted."""
        cur = self._current
        obs_arr = np.asarray(obs, dtype=self.obs_dtype)
        if obs_arr.shape != self.obs_shape:
            raise ValueError(f"obs shape {obs_arr.shape} does not match the buffer's {self.obs_shape}")
        aux = (
            np.asarray(action, dtype=np.int64),
            np.asarray(reward, dtype=np.float32),
            np.asarray(done, dtype=np.bool_),
        )
        cur["obs"].append(obs_arr)
        cur["action"].append(aux[0])
        cur["reward"].append(aux[1])
        cur["done"].append(aux[2])
        self._pending_obs_bytes += obs_arr.nbytes
        self._pending_aux_bytes += sum(a.nbytes for a in aux)
        if done:
            return self._store_current()
        return []

    def add_episode(self, episode: Episode) -> list[Episode]:
        """Store a whole episode (arrays with equal first dimension)."""
        lengths = {len(v) for v in episode.values()}
        if len(lengths) != 1:
            raise ValueError(f"episode arrays differ in length: {sorted(lengths)}")
        ep = dict(episode)
        ep["id"] = np.asarray(self._next_id)
        return self._store(ep)

    def _store_current(self) -> list[Episode]:
        cur = self._current
        ep = {key: np.stack(values) for key, values in cur.items()}
        ep["id"] = np.asarray(self._next_id)
        for values in cur.values():
            values.clear()
        self._pending_obs_bytes = 0
        self._pending_aux_bytes = 0
        return self._store(ep)

    def _store(self, ep: Episode) -> list[Episode]:
        self._next_id += 1
        self.episodes.append(ep)
        self.added_episodes += 1
        length = len(ep["obs"])
        self._stored_steps += length
        self._obs_bytes += ep["obs"].nbytes
        self._aux_bytes += sum(v.nbytes for k, v in ep.items() if k != "obs")
        evicted: list[Episode] = []
        # Keep the newest episode even if it alone exceeds capacity: an empty buffer
        # cannot train.
        while self._stored_steps > self.capacity_steps and len(self.episodes) > 1:
            old = self.episodes.popleft()
            self._stored_steps -= len(old["obs"])
            self._obs_bytes -= old["obs"].nbytes
            self._aux_bytes -= sum(v.nbytes for k, v in old.items() if k != "obs")
            self.evictions += 1
            self.evicted_ids.append(int(old["id"]))
            evicted.append(old)
        return evicted

    # -- restoring from a checkpoint ---------------------------------------------------
    def _store_restored(self, ep: Episode) -> None:
        """Append a restored episode as it was stored, with no eviction and no counting."""
        self.episodes.append(ep)
        self._stored_steps += len(ep["obs"])
        self._obs_bytes += ep["obs"].nbytes
        self._aux_bytes += sum(v.nbytes for k, v in ep.items() if k != "obs")

    def _restore_counters(self, meta: dict[str, object], pending_steps: int) -> None:
        self.evictions = int(meta["evictions"])  # type: ignore[call-overload]
        self.added_episodes = int(meta["added_episodes"])  # type: ignore[call-overload]
        self.evicted_ids = [int(i) for i in meta["evicted_ids"]]  # type: ignore[attr-defined]
        self._next_id = int(meta["next_id"])  # type: ignore[call-overload]
        self._rng.bit_generator.state = meta["rng"]  # type: ignore[assignment]
        cur = self._current
        self._pending_obs_bytes = sum(a.nbytes for a in cur["obs"])
        self._pending_aux_bytes = sum(a.nbytes for k in ("action", "reward", "done") for a in cur[k])
        assert len(cur["obs"]) == pending_steps

    # -- reading -------------------------------------------------------------------
    @property
    def evicting(self) -> bool:
        """True once the buffer has evicted at least one episode (it is full)."""
        return self.evictions > 0

    @property
    def accounting(self) -> Accounting:
        return Accounting(
            total_steps=self._stored_steps + len(self._current["obs"]),
            episodes=len(self.episodes),
            obs_bytes=self._obs_bytes + self._pending_obs_bytes,
            aux_bytes=self._aux_bytes + self._pending_aux_bytes,
        )

    @property
    def nbytes(self) -> int:
        """Bytes of every array the buffer holds, stored and in progress."""
        return self._obs_bytes + self._aux_bytes + self._pending_obs_bytes + self._pending_aux_bytes

    def held_arrays(self) -> Iterator[np.ndarray]:
        for ep in self.episodes:
            yield from ep.values()
        for values in self._current.values():
            yield from values

    def can_sample(self, length: int) -> bool:
        """True when some stored episode is at least ``length`` steps long."""
        return any(len(ep["obs"]) >= length for ep in self.episodes)

    def _windows(self, batch: int, length: int) -> list[tuple[Episode, int]]:
        eligible = [ep for ep in self.episodes if len(ep["obs"]) >= length]
        if not eligible:
            raise ValueError(f"no stored episode has {length} steps to sample a window from")
        sizes = np.array([len(ep["obs"]) - length + 1 for ep in eligible], dtype=float)
        picks = self._rng.choice(len(eligible), size=batch, p=sizes / sizes.sum())
        out = []
        for i in picks:
            ep = eligible[int(i)]
            t0 = int(self._rng.integers(0, len(ep["obs"]) - length + 1))
            out.append((ep, t0))
        return out

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """A batch of windows, copied out of the episodes (np.stack copies)."""
        windows = self._windows(batch, length)
        return {
            key: np.stack([ep[key][t0 : t0 + length] for ep, t0 in windows])
            for key in ("obs", "action", "reward", "done")
        }

    def sample_views(self, batch: int, length: int) -> list[dict[str, np.ndarray]]:
        """Windows as views into the stored episodes: ``ep["obs"][t0:t1]``, no copy."""
        return [
            {key: ep[key][t0 : t0 + length] for key in ("obs", "action", "reward", "done")}
            for ep, t0 in self._windows(batch, length)
        ]


class EpisodeSource:
    """Synthetic episodes: random observations, lengths drawn from a range."""

    def __init__(
        self,
        obs_shape: tuple[int, ...] = (32, 32, 3),
        length_range: tuple[int, int] = (50, 150),
        seed: int = 0,
    ) -> None:
        self.obs_shape = obs_shape
        self.length_range = length_range
        self._rng = np.random.default_rng(seed)
        self._left = self._new_length()

    def _new_length(self) -> int:
        lo, hi = self.length_range
        return int(self._rng.integers(lo, hi + 1))

    def step(self) -> tuple[np.ndarray, int, float, bool]:
        obs = self._rng.integers(0, 256, size=self.obs_shape, dtype=np.uint8)
        self._left -= 1
        done = self._left <= 0
        if done:
            self._left = self._new_length()
        return obs, int(self._rng.integers(0, 6)), float(self._rng.standard_normal()), done


def run_leaky(rec: object, steps: int = 100_000, variant: str = "view_leak", seed: int = 0) -> int:
    """Incident 1 end to end for ``harness.run_isolated``: the replay scenario with a leaking
    trainer, driven until ``steps`` or until the memory cap stops it. Needs torch."""
    from dataclasses import replace

    from harness.scenarios.drive import FIXED, drive_replay

    run = drive_replay(rec, replace(FIXED, variant=variant, steps=steps, seed=seed))  # type: ignore[arg-type]
    return run.buffer.evictions
