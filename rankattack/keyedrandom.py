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


def _mix(keys: Tensor, counters: Tensor) -> Tensor:
    """32-bit random integers (as int64) for ``keys`` and ``counters`` (broadcast together)."""
    x = (keys + _mul32(counters, _GOLDEN)) & _MASK
    return _hash32(_hash32(x) ^ keys)


def _unit(bits: Tensor) -> Tensor:
    """Float64 numbers in the open interval ``(0, 1)`` from the top 24 of 32 random bits."""
    return ((bits >> 8).to(torch.float64) + 0.5) / float(1 << 24)


def _gamma_proposals(u: Tensor, d: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Marsaglia and Tsang's proposals from uniforms ``u`` ``[..., 3, T]`` (planes: the two of
    a Box-Muller normal, the acceptance test's), for ``d``, ``c`` ``[..., 1]``.

    Returns ``log v`` (0 where ``v <= 0``) and whether each proposal is accepted, ``[..., T]``.
    """
    z = torch.sqrt(-2.0 * torch.log(u[..., 0, :])) * torch.cos(2.0 * math.pi * u[..., 1, :])
    v = (1.0 + c * z) ** 3
    logv = torch.log(v.clamp_min(1e-300))
    ok = (v > 0) & (torch.log(u[..., 2, :]) < 0.5 * z * z + d - d * v + d * logv)
    return torch.where(v > 0, logv, torch.zeros_like(logv)), ok


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
        j = torch.arange(count, dtype=torch.long, device=ids.device)
        return _mix(self.keys(ids, step, stream).unsqueeze(1), j)

    def uniform(
        self,
        ids: Tensor,
        step: int,
        stream: int,
        shape: tuple[int, ...],
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``[A, *shape]`` uniform numbers in the open interval ``(0, 1)``."""
        u = _unit(self.bits(ids, step, stream, math.prod(shape)))
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

        Marsaglia and Tsang's squeeze method (ACM TOMS 2000) with up to ``trials``
        proposals per element (each accepted with probability above 0.95): the first is
        drawn for every element, the others, all at once, for the elements that rejected it;
        an element that rejects all of them, with probability below ``0.05 ** trials``, keeps
        its last proposal. Shapes below 1 use ``G(a) = G(a + 1) U^(1/a)``, in log space so
        that very small shapes do not underflow. Computed in float64.
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
        # The uniforms are those of ``uniform(ids, step, stream, (4, trials, n))``: element
        # (plane p, trial t, j) has counter (p * trials + t) * n + j. The first trial is drawn
        # for every element; the later ones only for the few elements that rejected it.
        keys = self.keys(ids, step, stream)
        j = torch.arange(n, dtype=torch.long, device=ids.device)
        planes = torch.arange(4, dtype=torch.long, device=ids.device) * (trials * n)
        u = _unit(_mix(keys.view(-1, 1, 1), planes.view(4, 1) + j))  # [A, 4, n]
        logv, ok = _gamma_proposals(
            u[:, :3].transpose(1, 2).unsqueeze(-1), d.unsqueeze(-1), c.unsqueeze(-1)
        )
        logv, ok = logv.squeeze(-1), ok.squeeze(-1)  # [A, n]
        if trials > 1:
            # the first accepted of the later trials, else the last one (one host sync)
            rows, cols = (~ok).nonzero(as_tuple=True)
            later = torch.arange(1, trials, dtype=torch.long, device=ids.device) * n
            counters = planes[:3].view(1, 3, 1) + later.view(1, 1, -1) + cols.view(-1, 1, 1)
            u_r = _unit(_mix(keys[rows].view(-1, 1, 1), counters))  # [R, 3, trials - 1]
            logv_r, ok_r = _gamma_proposals(
                u_r, d[rows, cols].unsqueeze(-1), c[rows, cols].unsqueeze(-1)
            )
            ok_r[:, -1] |= ~ok_r.any(1)
            first = ok_r.long().argmax(1, keepdim=True)
            logv[rows, cols] = logv_r.gather(1, first).squeeze(1)
        out = torch.log(d) + logv
        # one more uniform per element (plane 3 of the first trial) for the shape-below-1 boost
        out = torch.where(boost, out + torch.log(u[:, 3]) / a, out)
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
