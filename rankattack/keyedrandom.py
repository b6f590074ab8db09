"""Random numbers keyed by (seed, item id, step, stream): the same draw whatever the batch.

Query-based attacks draw fresh noise for every attacked query at every iteration. With
one ``torch.Generator`` for a whole batch, the noise of query i would depend on which
other queries share its batch (and on early-stopped queries dropping out), so a run
split into chunks, or resumed after a kill, would not repeat. Here every number is a
pure function of ``(seed, id, step, stream, element index)``: a 32-bit integer hash
(the "lowbias32" finalizer of C. Wellons' hash-prospector) applied to a counter, computed
with vectorized int64 tensor arithmetic (no overflow: every product stays below
``2**63`` in magnitude) on whatever device the ids live on. No per-sample Python loop, no host sync.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rankattack._validation import check_int, check_tensor

__all__ = ["KeyedRandom"]

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(x: Tensor, c: int) -> Tensor:
    """``(x * c) mod 2**32`` for ``x`` in ``[0, 2**32)`` and a constant ``c < 2**32``.

    No int64 overflow: a constant at or above ``2**31`` is replaced by ``c - 2**32``
    (congruent modulo ``2**32``, and ``|x (c - 2**32)| < 2**63``); the mask keeps the low
    32 bits of the two's-complement product.
    """
    return (x * (c - (1 << 32) if c >= 1 << 31 else c)) & _MASK


def _hash32(x: Tensor) -> Tensor:
    """The lowbias32 integer hash (bijective on 32-bit values)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _fold(value: int) -> int:
    value &= (1 << 64) - 1
    return (value ^ (value >> 32)) & _MASK


class KeyedRandom:
    """Counter-based random numbers keyed by ``(seed, id, step, stream)``.

    Parameters
    ----------
    seed : int
        The run's seed.

    Notes
    -----
    Row ``r`` of every draw depends only on ``(seed, ids[r], step, stream)`` and on the
    shape asked for, never on the other rows: an attack that keys its noise by each
    query's id gives every query the same numbers whether it runs alone, in a batch of
    1,000, or in a resumed run. Statistical quality is that of a good 32-bit hash
    (ample for search noise and permutations; not for cryptography).

    Examples
    --------
    >>> import torch
    >>> rng = KeyedRandom(0)
    >>> a = rng.uniform(torch.tensor([3, 7]), step=0, stream=1, shape=(4,))
    >>> b = rng.uniform(torch.tensor([7]), step=0, stream=1, shape=(4,))
    >>> torch.equal(a[1], b[0])
    True
    """

    def __init__(self, seed: int) -> None:
        self.seed = check_int(seed, "seed")

    def __repr__(self) -> str:
        return f"KeyedRandom(seed={self.seed})"

    def keys(self, ids: Tensor, step: int, stream: int) -> Tensor:
        """One 32-bit key per id ``[A]`` (int64) for this ``step`` and ``stream``."""
        check_tensor(ids, "ids", ndim=1, integer=True)
        base = _hash32(torch.tensor(_fold(self.seed), dtype=torch.long, device=ids.device))
        base = _hash32(base ^ _fold(stream * 0x632BE5AB + 1))
        base = _hash32(base ^ _fold(step * 0x85157AF5 + 7))
        return _hash32(base ^ (ids.long() & _MASK))

    def bits(self, ids: Tensor, step: int, stream: int, count: int) -> Tensor:
        """``[A, count]`` 32-bit random integers (as int64)."""
        count = check_int(count, "count", low=0)
        k = self.keys(ids, step, stream).unsqueeze(1)
        j = torch.arange(count, dtype=torch.long, device=ids.device)
        x = (k + _mul32(j, _GOLDEN)) & _MASK
        return _hash32(_hash32(x) ^ k)

    def uniform(
        self,
        ids: Tensor,
        step: int,
        stream: int,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``[A, *shape]`` uniform numbers in the open interval ``(0, 1)``."""
        n = math.prod(shape)
        b = self.bits(ids, step, stream, n) >> 8  # 24 bits
        u = (b.to(torch.float64) + 0.5) / float(1 << 24)
        return u.to(dtype).reshape(ids.shape[0], *shape)

    def normal(
        self,
        ids: Tensor,
        step: int,
        stream: int,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``[A, *shape]`` standard normal numbers (Box-Muller on two uniform draws)."""
        n = math.prod(shape)
        u = self.uniform(ids, step, stream, (2, n), torch.float64)
        z = torch.sqrt(-2.0 * torch.log(u[:, 0])) * torch.cos(2.0 * math.pi * u[:, 1])
        return z.to(dtype).reshape(ids.shape[0], *shape)

    def log_gamma(
        self,
        ids: Tensor,
        step: int,
        stream: int,
        concentration: Tensor,
        trials: int = 4,
    ) -> Tensor:
        """Logs of Gamma(``concentration``, 1) draws, shaped like ``concentration`` ``[A, ...]``.

        Marsaglia and Tsang's squeeze method (ACM TOMS 2000) with ``trials`` proposals
        drawn at once per element (each accepted with probability above 0.95); an element
        that rejects all of them, with probability below ``0.05 ** trials``, keeps its last
        proposal. Shapes below 1 use ``G(a) = G(a + 1) U^(1/a)``, in log space so that very
        small shapes do not underflow. Computed in float64.
        """
        check_tensor(concentration, "concentration", min_ndim=1, floating=True)
        if concentration.shape[0] != ids.shape[0]:
            raise ValueError(
                f"concentration must have one row per id ({ids.shape[0]}), "
                f"got {concentration.shape[0]}"
            )
        if not bool((concentration > 0).all()):
            raise ValueError("concentration must be > 0 everywhere")
        trials = check_int(trials, "trials", low=1)
        a = concentration.to(torch.float64).reshape(ids.shape[0], -1)
        n = a.shape[1]
        boost = a < 1
        d = torch.where(boost, a + 1, a) - 1.0 / 3.0
        c = 1.0 / torch.sqrt(9.0 * d)
        u = self.uniform(ids, step, stream, (4, trials, n), torch.float64)
        z = torch.sqrt(-2.0 * torch.log(u[:, 0])) * torch.cos(2.0 * math.pi * u[:, 1])
        v = (1.0 + c.unsqueeze(1) * z) ** 3  # [A, trials, n]
        logv = torch.log(v.clamp_min(1e-300))
        dd = d.unsqueeze(1)
        ok = (v > 0) & (torch.log(u[:, 2]) < 0.5 * z * z + dd - dd * v + dd * logv)
        # the first accepted proposal, else the last one (v = 1, the mode, if it is not > 0)
        ok[:, -1] |= ~ok.any(1)
        first = ok.long().argmax(1, keepdim=True)
        logv = torch.where(v > 0, logv, torch.zeros_like(logv)).gather(1, first).squeeze(1)
        out = torch.log(d) + logv
        boost_u = u[:, 3, 0]  # one more uniform per element for the shape-below-1 boost
        out = torch.where(boost, out + torch.log(boost_u) / a, out)
        return out.reshape(concentration.shape)

    def rademacher(
        self,
        ids: Tensor,
        step: int,
        stream: int,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``[A, *shape]`` random signs, +1 or -1 with equal probability."""
        n = math.prod(shape)
        b = (self.bits(ids, step, stream, n) >> 31) & 1
        return (2 * b - 1).to(dtype).reshape(ids.shape[0], *shape)

    def integers(self, ids: Tensor, step: int, stream: int, count: int, high: Tensor) -> Tensor:
        """``[A, count]`` integers uniform in ``[0, high)`` (``high`` broadcast to that shape)."""
        u = self.uniform(ids, step, stream, (count,), torch.float64)
        return (u * high).floor().long().clamp_max(high.long() - 1)

    def permutation(self, ids: Tensor, size: int, stream: int, step: int = 0) -> Tensor:
        """``[A, size]`` uniformly random permutations of ``0 .. size-1``, one per id."""
        size = check_int(size, "size", low=0)
        return self.bits(ids, step, stream, size).argsort(dim=1, stable=True)
