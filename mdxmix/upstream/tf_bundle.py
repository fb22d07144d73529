"""Reading a TensorFlow checkpoint (a "tensor bundle") without TensorFlow and without unpickling.

Why: Deezer's Spleeter models, trained on real commercial music, are published only as TF
checkpoints (`model.index` + `model.data-00000-of-00001`). TensorFlow itself, installed only
to read about 80 MB of float32, would be a far larger dependency than the reader; the format
is small enough to read directly:

* `model.index` is a LevelDB table. Its last 48 bytes are the footer: two block handles
  (varint offset and size: the meta-index and the index block) and a magic number. The index
  block points at data blocks; each block is a run of prefix-compressed (key, value) entries,
  then restart offsets, then a 5-byte trailer (compression type, CRC) outside the block.
* Each key is a tensor name; its value is a `BundleEntryProto` (protobuf): dtype (1), shape
  (2), shard (3), offset (4), size (5), crc32c (6). The empty key holds the bundle header.
* `model.data-0000s-of-0000n` holds the raw little-endian tensor bytes at those offsets.

Only uncompressed tables and numeric dtypes are read; anything else is refused in one line.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import UpstreamError

_MAGIC = 0xDB4775248B80FB57
#: TensorFlow DataType enum values → numpy dtypes (types.proto).
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one uncompressed table block."""
    if data[offset + size] != 0:  # the trailer's compression byte
        raise ValueError("compressed table blocks are not supported")
    block = data[offset : offset + size]
    restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's (field number, value) pairs: varints, 32/64-bit and length-delimited."""
    out, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")
        out.append((number, value))
    return out


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int]:
    """BundleEntryProto → (dtype, shape, shard, offset, size)."""
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for number, field in _fields(value):
        if number == 1:
            dtype = field
        elif number == 2:
            for dim_number, dim in _fields(field):
                if dim_number == 2:  # TensorShapeProto.dim → Dim.size (1)
                    shape.append(next((s for n, s in _fields(dim) if n == 1), 0))
        elif number == 3:
            shard = field
        elif number == 4:
            offset = field
        elif number == 5:
            size = field
    return dtype, tuple(shape), shard, offset, size


def read_tensor_bundle(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint `prefix` (the path without `.index`), by variable name."""
    prefix = Path(prefix)
    index_path = prefix.with_name(prefix.name + ".index")
    try:
        index = index_path.read_bytes()
        if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
            raise ValueError("no LevelDB table footer")
        footer = index[-48:]
        _, pos = _varint(footer, 0)
        _, pos = _varint(footer, pos)  # the meta-index handle: unused
        index_offset, pos = _varint(footer, pos)
        index_size, _ = _varint(footer, pos)
        entries: list[tuple[bytes, bytes]] = []
        for _, handle in _block_entries(index, index_offset, index_size):
            offset, pos = _varint(handle, 0)
            size, _ = _varint(handle, pos)
            entries += _block_entries(index, offset, size)
        shards: dict[int, bytes] = {}
        tensors = {}
        for key, value in entries:
            if not key:  # the bundle header
                continue
            dtype, shape, shard, offset, size = _entry(value)
            if dtype not in _DTYPES:
                raise ValueError(f"tensor {key.decode()}: TF dtype {dtype} is not supported")
            if shard not in shards:
                count = sum(1 for _ in prefix.parent.glob(f"{prefix.name}.data-*"))
                shards[shard] = prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{count:05d}").read_bytes()
            raw = shards[shard][offset : offset + size]
            tensors[key.decode()] = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(shape).copy()
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise UpstreamError(f"{prefix}: not a readable TensorFlow checkpoint ({exc})") from exc
    return tensors
