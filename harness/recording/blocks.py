"""The block trace format: compact, append-only, checksummed, flushed in blocks.

Why this format (figures in README "Trace files"): JSONL costs ~85 bytes and ~3 µs to
read per sample; numpy blocks with delta-coded integers, byte shuffling and zlib cost a
few bytes and tens of nanoseconds, with nothing beyond numpy and the standard library
(Arrow IPC would add a ~100 MB dependency for the same job).

Layout::

    file    := SIGNATURE record*
    record  := header payload
    header  := kind u8 | flags u8 | reserved u16 | length u32 | crc32 u32   (little-endian)
    kinds   := 'M' meta (JSON, first) | 'S' samples | 'E' event (JSON) | 'N' end (JSON)
    flags   := bit 0: payload is zlib-compressed

The CRC-32 covers the first 8 header bytes and the stored payload. Each record goes to
the file in one ``write`` on an ``O_APPEND`` descriptor; samples are buffered and written
as one 'S' record every ``block_rows`` samples or ``flush_s`` seconds (and before every
event and at the end), so a SIGKILL loses at most the samples of the block not yet
written. A reader ignores a torn or unverifiable *last* record (the kill) and rejects any
other damage with a :class:`~harness.errors.TraceError` naming the file and byte offset.

A samples payload::

    u32 header length | header JSON {"n": rows, "cols": [[table, name], ...],
                                     "enc": [encoding of each array], "counts": bool}
    steps | times | [counts] | each column | [each column's lo, hi]

Encodings: "dW" integral values (steps, byte counts) as their first value (int64) and
deltas in W-byte ints (the narrowest that holds them), "uW" times likewise in
microseconds, "f" raw float64 (anything else, NaN and infinities included). Arrays of 4-
and 8-byte values are byte-shuffled (the k-th bytes of all values together).
"dWxG": deltas that share a divisor G > 1 are stored divided by it (RSS moves in 4,096-
byte pages, the allocator in 16-byte chunks: a page-quantised RSS needs 1 byte a sample,
not 2 or 4). "dc"/"uc": a constant delta (steps at a fixed stride, a full buffer's
bytes): the first value and the delta, two int64, whatever the row count. Every byte a
sample costs is inflated by zlib on each load (~4 ns a byte here), so the encodings that
drop bytes also make loading faster.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
import zlib
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import TraceError
from harness.recording.trace import FORMAT_VERSION, TABLES, Event, Trace, _append_row

SIGNATURE = b"\x89HTRACE\n"
_HEADER = struct.Struct("<BBHII")
_KINDS = {ord("M"), ord("S"), ord("E"), ord("N")}
_COMPRESSED = 1
_MAX_RECORD = 1 << 28
_LEVEL = 1

#: Samples per block and the longest a sample waits in memory before it is written.
BLOCK_ROWS = 16_384
FLUSH_S = 1.0


def _shuffle(raw: NDArray[Any]) -> bytes:
    width = raw.dtype.itemsize
    if width <= 2:  # small deltas: shuffling buys little and costs a copy on every load
        return raw.tobytes()
    return np.ascontiguousarray(raw.view(np.uint8).reshape(-1, width).T).tobytes()


def _unshuffle(buf: bytes | memoryview, n: int, dtype: Any) -> NDArray[Any]:
    width = np.dtype(dtype).itemsize
    if len(buf) != width * n:
        raise ValueError(f"an array of {n} values of {width} bytes holds {len(buf)} bytes")
    if width <= 2:
        return np.frombuffer(buf, dtype=dtype)
    out: NDArray[Any] = np.frombuffer(buf, dtype=np.uint8).reshape(width, n).T.copy().view(dtype).reshape(-1)
    return out


_INTS: dict[int, Any] = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}
_LIMITS = {1: 2**7 - 1, 2: 2**15 - 1, 4: 2**31 - 1, 8: 2**63 - 1}


def _encode(values: NDArray[Any], *, micro: bool = False) -> tuple[str, bytes]:
    """(encoding, bytes): integral values as deltas in the narrowest int that holds them."""
    v = np.asarray(values, dtype=np.float64)
    scaled = v * 1e6 if micro else v
    if len(v) and np.all(np.isfinite(scaled)) and np.all(np.abs(scaled) < 2**53):
        ints = np.rint(scaled) if micro else scaled
        if micro or np.all(ints == np.floor(ints)):
            kind = "u" if micro else "d"
            i = ints.astype(np.int64)
            head = struct.pack("<q", int(i[0]))
            d = np.empty_like(i)
            d[0] = 0
            np.subtract(i[1:], i[:-1], out=d[1:])
            if len(d) == 1 or int(d[1:].min()) == int(d[1:].max()):
                return f"{kind}c", head + struct.pack("<q", int(d[1]) if len(d) > 1 else 0)
            gcd = 1 if micro else int(np.gcd.reduce(d))  # d[0] = 0 leaves the others' divisor
            suffix = ""
            if gcd > 1:
                d //= gcd
                suffix = f"x{gcd}"
            span = int(np.max(np.abs(d)))
            width = next(w for w, top in _LIMITS.items() if span <= top)
            return f"{kind}{width}{suffix}", head + _shuffle(d.astype(_INTS[width]))
    return "f", _shuffle(v)


#: Parsed encodings: (kind "f"/"d"/"u", bytes a value (0: constant delta), divisor).
_ENCODINGS: dict[str, tuple[str, int, int]] = {"f": ("f", 8, 1)}


def _parse(enc: str) -> tuple[str, int, int]:
    known = _ENCODINGS.get(enc)
    if known is not None:
        return known
    kind, width, gcd = enc[:1], enc[1:2], 1
    if enc[2:3] == "x" and enc[3:].isdigit() and len(enc) < 24:
        gcd = int(enc[3:])
    elif len(enc) != 2:
        width = "?"
    if kind not in ("d", "u") or not (width == "c" or (width.isdigit() and int(width) in _INTS)) or gcd < 1:
        raise ValueError(f"unknown encoding {enc!r}"[:200])
    parsed = (kind, 0 if width == "c" else int(width), gcd)
    if len(_ENCODINGS) < 256:
        _ENCODINGS[enc] = parsed
    return parsed


def _size(enc: str, n: int) -> int:
    kind, width, _ = _parse(enc)
    if kind == "f":
        return 8 * n
    return 16 if width == 0 else 8 + width * n


def _integers(enc: str, buf: bytes | memoryview, n: int, acc: NDArray[np.int64]) -> tuple[str, int]:
    """The integers a "d"/"u" encoding holds, less its first value, written into ``acc``;
    returns (kind, first value)."""
    kind, width, gcd = _parse(enc)
    if width == 0:
        first, step = struct.unpack_from("<qq", buf, 0)
        np.multiply(np.arange(n, dtype=np.int64), np.int64(step), out=acc)
        return kind, first
    (first,) = struct.unpack_from("<q", buf, 0)
    np.cumsum(_unshuffle(buf[8:], n, _INTS[width]), dtype=np.int64, out=acc)
    if gcd != 1:
        acc *= gcd
    return kind, first


def _decode(enc: str, buf: bytes | memoryview, n: int, *, ints: bool = False) -> NDArray[Any]:
    if enc == "f":
        values = _unshuffle(buf, n, np.float64)
        return values.astype(np.int64) if ints else values
    out = np.empty(n, dtype=np.int64)
    kind, first = _integers(enc, buf, n, out)
    out += first
    if ints:
        return out
    if kind == "u":
        return out / 1e6
    return out.astype(np.float64)


def _record(kind: str, payload: bytes, compress: bool = False) -> bytes:
    flags = 0
    if compress:
        payload = zlib.compress(payload, _LEVEL)
        flags |= _COMPRESSED
    head = _HEADER.pack(ord(kind), flags, 0, len(payload), 0)[:8]
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def _json(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, default=str).encode("utf-8")


def samples_payload(
    steps: NDArray[Any],
    times: NDArray[Any],
    tables: Mapping[str, Mapping[str, NDArray[Any]]],
    counts: NDArray[Any] | None = None,
    lows: Mapping[str, Mapping[str, NDArray[Any]]] | None = None,
    highs: Mapping[str, Mapping[str, NDArray[Any]]] | None = None,
) -> bytes:
    n = len(steps)
    encs: list[str] = []
    parts: list[bytes] = []

    def put(values: NDArray[Any], micro: bool = False) -> None:
        enc, data = _encode(values, micro=micro)
        encs.append(enc)
        parts.append(data)

    put(np.asarray(steps, dtype=np.float64))
    put(np.asarray(times, dtype=np.float64), micro=True)
    if counts is not None:
        put(np.asarray(counts, dtype=np.float64))
    cols: list[list[str]] = []
    for table in TABLES:
        for name, values in tables.get(table, {}).items():
            cols.append([table, name])
            put(values)
    if counts is not None:
        for table, name in cols:
            for group in (lows, highs):
                source = (group or {}).get(table, {}).get(name)
                put(tables[table][name] if source is None else source)
    header = json.dumps({"n": n, "cols": cols, "enc": encs, "counts": counts is not None}).encode("utf-8")
    return struct.pack("<I", len(header)) + header + b"".join(parts)


class BlockTraceWriter:
    """Append-only block-format writer (same calls as the JSONL ``TraceWriter``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str,
        meta: Mapping[str, Any] | None = None,
        *,
        block_rows: int = BLOCK_ROWS,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._block_rows = block_rows
        self._flush_s = flush_s
        self._steps: array[int] = array("q")
        self._times: array[float] = array("d")
        self._tables: dict[str, dict[str, array[float]]] = {t: {} for t in TABLES}
        self._flushed_at = time.monotonic()
        self._put(SIGNATURE + _record("M", _json({"format": FORMAT_VERSION, "name": name, "meta": dict(meta or {})})))

    def __enter__(self) -> BlockTraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, data: bytes) -> None:
        if self._fd is None:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sample(
        self,
        step: int,
        t: float,
        values: Mapping[str, float],
        accounting: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        n = len(self._steps)
        self._steps.append(step)
        self._times.append(t)
        tables = self._tables
        _append_row(tables["v"], values, n)
        if accounting or tables["a"]:
            _append_row(tables["a"], accounting or {}, n)
        if metrics or tables["m"]:
            _append_row(tables["m"], metrics or {}, n)
        if n + 1 >= self._block_rows or time.monotonic() - self._flushed_at >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered samples as one checksummed block."""
        self._flushed_at = time.monotonic()
        if not len(self._steps):
            return
        payload = samples_payload(
            np.frombuffer(self._steps, dtype=np.int64),
            np.frombuffer(self._times, dtype=np.float64),
            {t: {k: np.frombuffer(v, dtype=np.float64) for k, v in cols.items()} for t, cols in self._tables.items()},
        )
        self._put(_record("S", payload, compress=True))
        self._steps = array("q")
        self._times = array("d")
        self._tables = {t: {k: array("d") for k in cols} for t, cols in self._tables.items()}

    def write_block(
        self,
        steps: NDArray[Any],
        times: NDArray[Any],
        tables: Mapping[str, Mapping[str, NDArray[Any]]],
    ) -> None:
        """Write many samples as one block at once (after any buffered ones)."""
        self.flush()
        self._put(_record("S", samples_payload(steps, times, tables), compress=True))

    def event(self, event: Event) -> None:
        self.flush()
        self._put(_record("E", _json({"name": event.name, "step": event.step, "t": round(event.t, 6)})))

    def end(self, meta: Mapping[str, Any] | None = None) -> None:
        self.flush()
        self._put(_record("N", _json({"meta": dict(meta or {})})))

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None


def dump_blocks(trace: Trace, path: Path) -> None:
    """Write a whole trace (decimated rows with their counts and extremes) as blocks."""
    view = trace._materialise()
    with BlockTraceWriter(path, trace.name, trace.meta) as writer:
        n = len(view.steps)
        for a in range(0, n, BLOCK_ROWS):
            b = min(n, a + BLOCK_ROWS)
            counts = view.counts[a:b]
            decimated = bool(np.any(counts != 1))
            payload = samples_payload(
                view.steps[a:b],
                view.times[a:b],
                {t: {k: v[a:b] for k, v in view.tables[t].items()} for t in TABLES},
                counts if decimated else None,
                {t: {k: v[a:b] for k, v in view.lows[t].items()} for t in TABLES},
                {t: {k: v[a:b] for k, v in view.highs[t].items()} for t in TABLES},
            )
            writer._put(_record("S", payload, compress=True))
        for ev in trace.events:
            writer.event(ev)
        writer.end(trace.meta)


class _Bad(Exception):
    pass


#: Parsed block headers by their bytes: a file's blocks mostly share one header.
_HEADERS: dict[bytes, tuple[int, list[list[str]], list[str], bool]] = {}


def _header(raw: bytes) -> tuple[int, list[list[str]], list[str], bool]:
    """(rows, columns, encodings, with counts) of a samples block, checked."""
    known = _HEADERS.get(raw)
    if known is not None:
        return known
    header = json.loads(raw.decode("utf-8"))
    if not isinstance(header, dict):
        raise _Bad("block header is not an object")
    n, cols, encs = header.get("n"), header.get("cols"), header.get("enc")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or not isinstance(cols, list):
        raise _Bad("block header lacks a row count or column list")
    with_counts = bool(header.get("counts"))
    arrays = 2 + (1 if with_counts else 0) + len(cols) * (3 if with_counts else 1)
    if not isinstance(encs, list) or len(encs) != arrays or not all(isinstance(e, str) for e in encs):
        raise _Bad("block header's encodings do not match its columns")
    for col in cols:
        if not (isinstance(col, list) and len(col) == 2 and col[0] in TABLES and isinstance(col[1], str)):
            raise _Bad(f"bad column descriptor {col!r}"[:200])
    if len(_HEADERS) >= 256:
        _HEADERS.clear()
    _HEADERS[raw] = (n, cols, encs, with_counts)
    return n, cols, encs, with_counts


def _layout(payload: bytes) -> tuple[int, list[list[str]], bool, list[tuple[str, memoryview]]]:
    """(rows, columns, with counts, [(encoding, bytes)] of each array) of a samples payload."""
    (hlen,) = struct.unpack_from("<I", payload, 0)
    n, cols, encs, with_counts = _header(payload[4 : 4 + hlen])
    view = memoryview(payload)
    pos = 4 + hlen
    parts: list[tuple[str, memoryview]] = []
    for enc in encs:
        size = _size(enc, n)
        if pos + size > len(payload):
            raise _Bad("block data is shorter than its header says")
        parts.append((enc, view[pos : pos + size]))
        pos += size
    if pos != len(payload):
        raise _Bad("block data is longer than its header says")
    return n, cols, with_counts, parts


def _decode_samples(payload: bytes) -> tuple[Any, ...]:
    n, cols, with_counts, parts = _layout(payload)
    decoded = [_decode(enc, buf, n, ints=not i) for i, (enc, buf) in enumerate(parts)]
    steps = decoded[0]
    times = decoded[1]
    i = 2
    counts = None
    if with_counts:
        counts = decoded[2].astype(np.int64)
        if np.any(counts < 1):
            raise _Bad("a block row counts fewer than 1 sample")
        i = 3
    tables: dict[str, dict[str, NDArray[np.float64]]] = {t: {} for t in TABLES}
    lows: dict[str, dict[str, NDArray[np.float64]]] = {t: {} for t in TABLES}
    highs: dict[str, dict[str, NDArray[np.float64]]] = {t: {} for t in TABLES}
    for table, name in cols:
        tables[table][name] = decoded[i]
        i += 1
    if with_counts:
        for table, name in cols:
            lows[table][name], highs[table][name] = decoded[i], decoded[i + 1]
            i += 2
    return steps, times, tables, counts, lows, highs


def _decode_into(enc: str, buf: memoryview, n: int, out: NDArray[Any], scratch: NDArray[np.int64]) -> None:
    """``_decode`` written into ``out`` (int64 steps or float64 values): the same values,
    one pass fewer and no array of its own (``scratch``: int64 room for ``n`` values)."""
    if enc == "f":
        out[:] = _decode(enc, buf, n, ints=out.dtype == np.int64)
        return
    if out.dtype == np.int64:
        _, first = _integers(enc, buf, n, out)
        out += first
        return
    acc = scratch[:n]
    kind, first = _integers(enc, buf, n, acc)
    if kind == "u":
        acc += first
        np.divide(acc, 1e6, out=out)
    else:
        np.add(acc, np.int64(first), out=out)  # the int64 sum, then float64: as _decode


def _records(fh: Any, size: int, where: str) -> Iterator[tuple[int, int, int, bytes, zlib.error | None]]:
    """(index, byte offset, kind, payload, inflate error) of each record, checked and
    inflated, in order. A torn end (the writer was killed: a cut header or payload, or a
    last record that fails its checksum) ends the records quietly; other damage raises
    here, naming the record; an inflate error is handed on, to be named with the record."""
    offset = len(SIGNATURE)
    index = 0
    while offset < size:
        head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return  # torn header
        kind, flags, _, length, crc = _HEADER.unpack(head)
        if kind not in _KINDS or length > _MAX_RECORD:
            raise TraceError(f"trace file {where!r} record {index} at byte {offset}: not a record (corrupt file)")
        payload = fh.read(length)
        if len(payload) < length:
            return  # torn payload
        end = offset + _HEADER.size + length
        if zlib.crc32(payload, zlib.crc32(head[:8])) != crc:
            if end >= size:
                return  # the last record was cut short
            raise TraceError(f"trace file {where!r} record {index} at byte {offset}: checksum mismatch (corrupt)")
        error = None
        if flags & _COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as exc:
                error = exc
        yield index, offset, kind, payload, error
        offset = end
        index += 1


def load_blocks(path: Path, *, bounded: bool = True) -> Trace:
    where = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise TraceError(f"cannot read trace file {where!r}: {exc.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        fh.read(len(SIGNATURE))
        trace: Trace | None = None
        batch: _Batch | None = None
        for index, offset, kind, payload, error in _records(fh, size, where):
            try:
                if error is not None:
                    raise error
                if kind == ord("S"):
                    if trace is None:
                        raise _Bad("samples before the meta record")
                    if batch is None:
                        batch = _Batch(trace)
                    n, cols, with_counts, parts = _layout(payload)
                    if with_counts:
                        batch.close()
                        steps, times, tables, counts, lows, highs = _decode_samples(payload)
                        trace.extend(steps, times, tables, counts=counts, lows=lows, highs=highs)
                    else:
                        batch.add(n, cols, parts)
                else:
                    rec = json.loads(payload.decode("utf-8"))
                    if not isinstance(rec, dict):
                        raise _Bad("record is not a JSON object")
                    if kind == ord("M"):
                        if trace is not None:
                            raise _Bad("a second meta record")
                        if rec.get("format") != FORMAT_VERSION:
                            raise TraceError(
                                f"trace file {where!r} has format {rec.get('format')!r}; "
                                f"this harness reads {FORMAT_VERSION}"
                            )
                        meta = rec.get("meta")
                        if meta is not None and not isinstance(meta, dict):
                            raise _Bad("'meta' is not an object")
                        trace = Trace(str(rec.get("name", path.stem)), dict(meta or {}), bounded=bounded)
                    elif trace is None:
                        raise _Bad("the file does not start with a meta record")
                    elif kind == ord("E"):
                        name, step, t = rec.get("name"), rec.get("step"), rec.get("t")
                        if (
                            not isinstance(name, str)
                            or isinstance(step, bool)
                            or not isinstance(step, int)
                            or isinstance(t, bool)
                            or not isinstance(t, (int, float))
                        ):
                            raise _Bad("an event needs a name, a whole step and a time")
                        trace.add_event(Event(name, step, float(t)))
                    else:
                        meta = rec.get("meta")
                        if meta is not None and not isinstance(meta, dict):
                            raise _Bad("'meta' is not an object")
                        trace.meta.update(meta or {})
            except TraceError:
                raise
            except (_Bad, ValueError, KeyError, TypeError, IndexError, struct.error, zlib.error, OverflowError) as exc:
                raise TraceError(f"trace file {where!r} record {index} at byte {offset}: {exc}"[:400]) from None
    if trace is None:
        raise TraceError(f"trace file {where!r} has no meta record (empty or cut before it)")
    if batch is not None:
        batch.close()
    return trace


#: Rows decoded before they are handed to the trace at once (fewer, larger folds).
_BATCH = 1 << 18


class _Batch:
    """Decoded samples gathered in one buffer per column, folded into a bounded trace
    straight from there (``Trace._fold_leading``): each value is copied once between
    decoding and folding. The rows not yet folded stay and move to the buffer's front."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.capacity = _BATCH
        self.fill = 0
        self.steps = np.empty(self.capacity, dtype=np.int64)
        self.times = np.empty(self.capacity)
        self.tables: dict[str, dict[str, NDArray[np.float64]]] = {t: {} for t in TABLES}
        self.scratch = np.empty(BLOCK_ROWS, dtype=np.int64)

    def _grow(self, need: int) -> None:
        capacity = max(need, 2 * self.capacity)

        def grown(a: NDArray[Any]) -> NDArray[Any]:
            out = np.empty(capacity, dtype=a.dtype)
            out[: self.fill] = a[: self.fill]
            return out

        self.steps, self.times = grown(self.steps), grown(self.times)
        self.tables = {t: {k: grown(v) for k, v in cols.items()} for t, cols in self.tables.items()}
        self.capacity = capacity

    def add(self, k: int, cols: list[list[str]], parts: list[tuple[str, memoryview]]) -> None:
        """Decode one samples block (no counts) into the buffers."""
        if self.fill + k > self.capacity:
            self.drain()
            trace = self.trace
            # room for what the trace folds at once (its exact rows plus one fold) and this block
            need = self.fill + k + (trace._exact + max(trace._exact, trace._block) if trace.bounded else 0)
            if need > self.capacity:
                self._grow(need)
        if len(self.scratch) < k:
            self.scratch = np.empty(k, dtype=np.int64)
        a, b = self.fill, self.fill + k
        _decode_into(parts[0][0], parts[0][1], k, self.steps[a:b], self.scratch)
        _decode_into(parts[1][0], parts[1][1], k, self.times[a:b], self.scratch)
        for (table, name), (enc, buf) in zip(cols, parts[2:], strict=True):
            mine = self.tables[table]
            col = mine.get(name)
            if col is None:
                col = mine[name] = np.empty(self.capacity)
                col[:a] = math.nan
            _decode_into(enc, buf, k, col[a:b], self.scratch)
        given = {(t, name) for t, name in cols}
        if len(given) != sum(len(t) for t in self.tables.values()):  # columns this block lacks: NaN
            for table, mine in self.tables.items():
                for name, col in mine.items():
                    if (table, name) not in given:
                        col[a:b] = math.nan
        self.fill = b

    def _view(self, a: int, b: int) -> tuple[NDArray[Any], NDArray[Any], dict[str, dict[str, NDArray[Any]]]]:
        tables = {t: {k: v[a:b] for k, v in cols.items()} for t, cols in self.tables.items()}
        return self.steps[a:b], self.times[a:b], tables

    def drain(self) -> None:
        """Fold what the trace would fold by now; an unbounded trace takes everything."""
        if not self.fill:
            return
        trace = self.trace
        if not trace.bounded or len(trace._steps):  # unbounded, or exact rows there already
            trace.extend(*self._view(0, self.fill))
            self.fill = 0
            return
        done = trace._fold_leading(*self._view(0, self.fill))
        if done:
            rest = self.fill - done
            self.steps[:rest] = self.steps[done : self.fill]
            self.times[:rest] = self.times[done : self.fill]
            for cols in self.tables.values():
                for col in cols.values():
                    col[:rest] = col[done : self.fill]
            self.fill = rest

    def close(self) -> None:
        """Hand every row over (before decimated rows, an event's end, or the file's end)."""
        self.drain()
        if self.fill:
            self.trace.extend(*self._view(0, self.fill))
        self.fill = 0


def bytes_per_sample(path: str | os.PathLike[str]) -> float:
    """File size over samples (for the format figures)."""
    trace = Trace.load(path)
    return os.path.getsize(path) / max(1, trace.samples) if not math.isnan(trace.samples) else math.nan
