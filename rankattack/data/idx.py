"""Reading IDX files, the file format of MNIST and Fashion-MNIST.

[read_idx][rankattack.data.idx.read_idx] is a strict reader: it checks the header (magic number,
type code, dimensions) and the payload length, decompresses gzip data, and names the file in every
error. Finding and validating the four MNIST files is [rankattack.data.mnist][]'s job.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_idx"]

PathLike = str | os.PathLike[str]

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST file format), raw or gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64, all
    big-endian), the number of dimensions, then each dimension as a big-endian
    uint32. The payload must hold exactly as many items as the dimensions say.

    A file is decompressed if its name ends in ``.gz`` or if it starts with
    the gzip magic bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a well-formed IDX file (bad magic number, unknown
        type code, zero dimensions, truncated header, payload of the wrong
        length, or corrupt gzip data). The message names the file.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        blob = fh.read()
    if path.suffix == ".gz" or blob[:2] == _GZIP_MAGIC:
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: not a valid gzip file ({exc})") from exc

    if len(blob) < 4:
        raise ValueError(
            f"{path}: too short for an IDX header (expected at least 4 bytes, got {len(blob)})"
        )
    zero0, zero1, code, ndim = blob[0], blob[1], blob[2], blob[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{path}: bad IDX magic number {blob[:4].hex()} "
            "(expected two zero bytes, a type code and the number of dimensions)"
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions (expected at least 1)")
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header_len} header "
            f"bytes, the file has {len(blob)}"
        )
    dims = struct.unpack(f">{ndim}I", blob[4:header_len])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(blob) - header_len
    if got != expected:
        raise ValueError(
            f"{path}: IDX payload has {got} bytes, expected {expected} "
            f"({' x '.join(map(str, dims))} items of {dtype.itemsize} byte(s), type {dtype.name})"
        )
    array = np.frombuffer(blob, dtype=dtype, offset=header_len).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)
