"""Checkpoints under attack: flipped bytes, crafted manifests and chunks, killed saves.

The property: ``load_buffer`` returns exactly the buffer that was saved (or, for a
manifest re-sealed by hand, exactly what that manifest says), or raises CheckpointError
with a one-line message; never another exception, never a different buffer.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_profiles import FUZZ, FUZZ_SLOW, one_line_error

from fixtures.checkpoint import (
    MAGIC_END,
    CheckpointError,
    buffer_digest,
    load_buffer,
    read_manifest,
    save_buffer,
    seal_manifest,
)
from harness.scenarios.replay import EpisodeReplay

ROOT = Path(__file__).resolve().parents[2]


def small_buffer(seed: int = 1) -> EpisodeReplay:
    rng = np.random.default_rng(seed)
    buf = EpisodeReplay(30, (2, 3), "uint8", seed=seed)
    for length in [5, 7, 4, 6, 8, 5]:
        for i in range(length):
            buf.add_step(rng.integers(0, 255, (2, 3), dtype=np.uint8), int(i), float(i) / 3, i == length - 1)
    for i in range(2):
        buf.add_step(rng.integers(0, 255, (2, 3), dtype=np.uint8), i, 0.5, False)
    return buf


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    buf = small_buffer()
    path = save_buffer(buf, tmp_path_factory.mktemp("ckpt") / "replay.ckpt", chunk_steps=10)
    return path.read_bytes(), buffer_digest(buf)


def _load_bytes(tmp: Path, data: bytes) -> EpisodeReplay:
    path = tmp / "flipped.ckpt"
    path.write_bytes(data)
    return load_buffer(path)


def _check(tmp: Path, data: bytes, digest: str) -> str:
    try:
        buf = _load_bytes(tmp, data)
    except CheckpointError as exc:
        one_line_error(exc, CheckpointError)
        return "refused"
    assert buffer_digest(buf) == digest, "a damaged checkpoint loaded as a different buffer"
    return "same"


def test_every_single_byte_flip_is_refused_or_loads_the_same_buffer(saved, tmp_path):
    data, digest = saved
    outcomes = {"refused": 0, "same": 0}
    positions = range(0, len(data), 3)  # a third of the bytes, every bit position (the fuzzer below takes any)
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        outcomes[_check(tmp_path, bytes(flipped), digest)] += 1
    # Whitespace in the manifest is the only place a flip may be harmless.
    assert outcomes["refused"] >= len(positions) - 32, outcomes


@FUZZ
@given(st.data())
def test_any_byte_replaced_anywhere_is_refused_or_harmless(saved, tmp_path_factory, data):
    raw, digest = saved
    pos = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[pos]))
    flipped = bytearray(raw)
    flipped[pos] = value
    _check(tmp_path_factory.mktemp("flip"), bytes(flipped), digest)


@FUZZ
@given(st.data())
def test_truncation_or_appended_bytes_are_refused(saved, tmp_path_factory, data):
    raw, digest = saved
    cut = data.draw(st.integers(0, len(raw) - 1))
    tail = data.draw(st.binary(min_size=1, max_size=40))
    tmp = tmp_path_factory.mktemp("cut")
    assert _check(tmp, raw[:cut], digest) == "refused"
    assert _check(tmp, raw + tail, digest) == "refused"


def _split(raw: bytes) -> tuple[bytes, dict]:
    (length,) = struct.unpack("<Q", raw[-16:-8])
    return raw[: -16 - length], json.loads(raw[-16 - length : -16])


def _join(body: bytes, manifest: object, seal: bool = True) -> bytes:
    if seal and isinstance(manifest, dict):
        manifest = seal_manifest(manifest)
    footer = json.dumps(manifest).encode()
    return body + footer + struct.pack("<Q", len(footer)) + MAGIC_END


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["|O", "<f8", "uint8", "obs", "pending", "V8", "O", ""]),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(node: object, path: tuple, value: object) -> object:
    if not path:
        return value
    node[path[0]] = _set(node[path[0]], path[1:], value)  # type: ignore[index]
    return node


@FUZZ
@given(st.data())
def test_a_crafted_manifest_with_a_valid_seal_is_refused_or_loads_what_it_says(saved, tmp_path_factory, data):
    raw, _ = saved
    body, manifest = _split(raw)
    where = data.draw(st.sampled_from([p for p in _paths(manifest) if "rng" not in p and "sha256" not in p]))
    crafted = _set(json.loads(json.dumps(manifest)), where, data.draw(json_values))
    tmp = tmp_path_factory.mktemp("crafted")
    try:
        buf = _load_bytes(tmp, _join(body, crafted))
    except CheckpointError as exc:
        one_line_error(exc, CheckpointError)
        return
    # It loaded: saving it again must describe the same buffer the crafted manifest did.
    again = read_manifest(save_buffer(buf, tmp / "again.ckpt", chunk_steps=10))
    for key in ("buffer", "episodes", "pending_steps"):
        assert again[key] == crafted[key], (where, key)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: [m],
        lambda m: m["chunks"][0].update(offset=-5),
        lambda m: m["buffer"].update(obs_dtype="|O"),
        lambda m: m["buffer"].update(capacity_steps=9562),
        lambda m: m["episodes"][0].update(length=m["episodes"][0]["length"] - 1),
        lambda m: m.pop("manifest_sha256"),
    ],
    ids=["json-list", "negative-offset", "object-dtype", "capacity-edited", "episode-short", "no-seal"],
)
def test_an_edited_manifest_without_a_new_seal_is_refused(saved, tmp_path, edit):
    raw, _ = saved
    body, manifest = _split(raw)
    result = edit(manifest)
    crafted = result if isinstance(result, list) else manifest
    with pytest.raises(CheckpointError) as err:
        _load_bytes(tmp_path, _join(body, crafted, seal=False))
    one_line_error(err.value, CheckpointError)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["chunks"][0].update(offset=-5),
        lambda m: m["buffer"].update(obs_dtype="|O"),
        lambda m: m["episodes"][0].update(length=m["episodes"][0]["length"] - 1),
        lambda m: m["chunks"].append(dict(m["chunks"][-1])),
        lambda m: m.update(pending_steps=0),
    ],
    ids=["negative-offset", "object-dtype", "episode-short", "duplicate-pending-chunk", "pending-dropped"],
)
def test_a_resealed_manifest_that_does_not_match_its_chunks_is_refused(saved, tmp_path, edit):
    raw, _ = saved
    body, manifest = _split(raw)
    edit(manifest)
    with pytest.raises(CheckpointError) as err:
        _load_bytes(tmp_path, _join(body, manifest))
    one_line_error(err.value, CheckpointError)


arrays = st.builds(
    lambda dtype, shape: np.zeros(shape, dtype=dtype),
    st.sampled_from(["uint8", "<i8", "<f4", "|b1", ">u2", "<f8", "<c8"]),
    st.lists(st.integers(0, 9), max_size=3).map(tuple),
)


@FUZZ_SLOW
@given(st.data())
def test_a_chunk_replaced_by_any_array_with_a_matching_digest_is_refused_or_exact(saved, tmp_path_factory, data):
    import hashlib

    raw, digest = saved
    body, manifest = _split(raw)
    index = data.draw(st.integers(0, len(manifest["chunks"]) - 1))
    chunk = manifest["chunks"][index]
    payload = io.BytesIO()
    if data.draw(st.booleans()):
        np.lib.format.write_array(payload, data.draw(arrays), allow_pickle=False)
        blob = payload.getvalue()
    else:
        blob = data.draw(st.binary(max_size=200))
    new_body = body[: chunk["offset"]] + blob + body[chunk["offset"] + chunk["nbytes"] :]
    shift = len(blob) - chunk["nbytes"]
    for other in manifest["chunks"]:
        if other["offset"] > chunk["offset"]:
            other["offset"] += shift
    chunk.update(nbytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    tmp = tmp_path_factory.mktemp("chunk")
    try:
        buf = _load_bytes(tmp, _join(new_body, manifest))
    except CheckpointError as exc:
        one_line_error(exc, CheckpointError)
        return
    if blob == raw[chunk["offset"] : chunk["offset"] + chunk["nbytes"] - shift]:
        assert buffer_digest(buf) == digest
    for ep, meta in zip(buf.episodes, manifest["episodes"], strict=True):
        assert len(ep["obs"]) == meta["length"] and ep["obs"].shape[1:] == buf.obs_shape


# -- killed saves ------------------------------------------------------------------------

SAVER = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {here!r})
    from test_checkpoint_integrity import small_buffer
    from fixtures.checkpoint import save_buffer
    kill_at = int(sys.argv[2])

    def on_chunk(n):
        if n == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.002)

    save_buffer(small_buffer(seed=7), sys.argv[1], chunk_steps=3, on_chunk=on_chunk)
    """
)


@pytest.mark.parametrize("kill_at", [1, 2, 5, 9, 14, 10_000])
def test_a_save_killed_at_any_chunk_leaves_the_previous_checkpoint_byte_identical(tmp_path, kill_at):
    path = tmp_path / "replay.ckpt"
    save_buffer(small_buffer(seed=1), path, chunk_steps=10)
    before = path.read_bytes()
    script = SAVER.format(root=str(ROOT), here=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(kill_at)], capture_output=True, timeout=120)
    if kill_at == 10_000:  # past the last chunk: the save completes
        assert proc.returncode == 0, proc.stderr.decode()
        assert buffer_digest(load_buffer(path)) == buffer_digest(small_buffer(seed=7))
        return
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    leftovers = list(tmp_path.glob("replay.ckpt.tmp-*"))
    assert len(leftovers) == 1
    save_buffer(small_buffer(seed=2), path, chunk_steps=10)  # the next save clears the killed one's file
    assert not list(tmp_path.glob("replay.ckpt.tmp-*"))


def test_a_save_killed_at_a_random_moment_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "replay.ckpt"
    save_buffer(small_buffer(seed=1), path, chunk_steps=10)
    before = path.read_bytes()
    script = SAVER.format(root=str(ROOT), here=str(Path(__file__).parent))
    rng = random.Random(os.getpid())
    expected = buffer_digest(small_buffer(seed=1))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path), "10000"])
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.5))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        data = path.read_bytes()
        if data != before:  # the save finished before the kill: it must be the new buffer, whole
            expected = buffer_digest(small_buffer(seed=7))
            before = data
        assert buffer_digest(load_buffer(path)) == expected


def test_a_save_onto_a_full_disk_fails_clearly_and_keeps_the_previous_checkpoint(tmp_path):
    from fault_mounts import tiny_tmpfs

    with tiny_tmpfs(tmp_path / "disk", "96k") as disk:
        path = disk / "replay.ckpt"
        save_buffer(small_buffer(seed=1), path, chunk_steps=10)
        before = path.read_bytes()
        big = EpisodeReplay(10_000, (64, 64), "uint8", seed=3)
        for i in range(40):
            big.add_step(np.zeros((64, 64), np.uint8), i, 0.0, i % 10 == 9)
        with pytest.raises(OSError, match="No space left"):
            save_buffer(big, path, chunk_steps=10)
        assert path.read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["replay.ckpt"]
