"""Tests for rankattack.data.idx (read_idx)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rankattack.data import read_idx
from tests._idx import IDX_CODES, idx_bytes, write_idx

idx_dtypes = st.sampled_from(sorted(IDX_CODES, key=str))
idx_arrays = idx_dtypes.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(array=idx_arrays, compress=st.booleans(), suffix=st.booleans())
def test_read_idx_round_trip(
    tmp_path: Path, array: np.ndarray, compress: bool, suffix: bool
) -> None:
    # gzip is detected from the magic bytes even without a .gz suffix.
    name = "a.idx" + (".gz" if compress and suffix else "")
    path = write_idx(tmp_path / name, array, compress)
    back = read_idx(path)
    assert back.dtype == array.dtype
    assert back.dtype.isnative
    assert back.shape == array.shape
    assert back.flags.writeable
    # Bit-exact, NaN payloads and signed zeros included.
    assert back.tobytes() == array.tobytes()


def test_read_idx_known_bytes(tmp_path: Path) -> None:
    # Hand-written big-endian int16 2x3 matrix.
    payload = struct.pack(">6h", 1, -2, 300, -32768, 32767, 0)
    path = tmp_path / "m.idx"
    path.write_bytes(bytes([0, 0, 0x0B, 2]) + struct.pack(">2I", 2, 3) + payload)
    np.testing.assert_array_equal(
        read_idx(path), np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=np.int16)
    )
    # Same thing gzipped, with the suffix, and as a str path.
    gz = tmp_path / "m.idx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_idx(str(gz)), read_idx(path))


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_header(0x08, (2, 3)) + bytes(5), "payload has 5 bytes, expected 6"),
        (_header(0x08, (2, 3)) + bytes(7), "payload has 7 bytes, expected 6"),
        (_header(0x0C, (4,)) + bytes(15), "payload has 15 bytes, expected 16"),
        (bytes([1, 0, 0x08, 1]) + struct.pack(">I", 1) + bytes(1), "bad IDX magic"),
        (bytes([0, 7, 0x08, 1]) + struct.pack(">I", 1) + bytes(1), "bad IDX magic"),
        (bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + bytes(1), "unknown IDX type code 0x0A"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        # Header claims 3 dimensions but only 2 are there.
        (bytes([0, 0, 0x08, 3]) + struct.pack(">2I", 1, 1), "truncated IDX header"),
        # Header claims 1 dimension for a 2x3 payload (wrong ndim).
        (bytes([0, 0, 0x08, 1]) + struct.pack(">2I", 2, 3) + bytes(6), "expected 2"),
        (bytes([0, 0]), "too short"),
        (b"", "too short"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_malformed(
    tmp_path: Path, content: bytes, expected: str, compress: bool
) -> None:
    path = tmp_path / ("bad-file.gz" if compress else "bad-file")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=expected) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a valid gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    # A .gz name on a file that is not gzip data is rejected too.
    raw_named_gz = tmp_path / "raw.gz"
    raw_named_gz.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"raw\.gz"):
        read_idx(raw_named_gz)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
