"""The candidate set X as precomputed embeddings: ranks, nearest neighbours, hinge sums.

Every gallery-wide quantity is computed in blocks so that no ``[M, block]`` (or
``[M, k, block]``) intermediate holds more than ``chunk_budget`` elements: a gallery of
a million 512-d embeddings is attacked in bounded memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_finite, check_int, check_tensor
from rankattack.distances import Distance, get_distance, row_chunks
from rankattack.wrappers import eval_mode

__all__ = ["DEFAULT_CHUNK_BUDGET", "Gallery"]

logger = logging.getLogger(__name__)

#: Default bound on the number of elements of any gallery-wide intermediate (64 MiB of float32).
DEFAULT_CHUNK_BUDGET = 2**24


class Gallery:
    """The candidate set X of a ranking system, held as embeddings.

    Parameters
    ----------
    embeddings : Tensor
        ``[|X|, D]`` floating-point embeddings of the candidates. Detached, never copied
        off their device.
    labels : Tensor, optional
        ``[|X|]`` integer class labels (used by retrieval metrics and sampling).
    metric : {"cosine", "euclidean", "normalized-euclidean"} or Distance
        Cosine distance ``1 - <a, b>`` on L2-normalized embeddings, Euclidean distance
        on raw embeddings, or Euclidean distance on L2-normalized embeddings.
    chunk_budget : int
        Upper bound on the number of elements of any ``[rows, block]`` intermediate.

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> g = Gallery(torch.eye(3), metric="cosine")
    >>> g.rank(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[[0.0, 1.0, 0.0]]]))
    tensor([[0.3333]])
    """

    def __init__(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        metric: str | Distance = "cosine",
        *,
        chunk_budget: int = DEFAULT_CHUNK_BUDGET,
    ) -> None:
        check_tensor(embeddings, "embeddings", ndim=2, floating=True)
        if embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
            raise ValueError(
                f"embeddings must be [|X|, D] with |X| >= 1 and D >= 1, "
                f"got shape {tuple(embeddings.shape)}"
            )
        check_finite(embeddings, "embeddings")
        if labels is not None:
            check_tensor(labels, "labels", ndim=1, integer=True)
            if labels.shape[0] != embeddings.shape[0]:
                raise ValueError(
                    f"labels must have one entry per embedding ({embeddings.shape[0]}), "
                    f"got {labels.shape[0]}"
                )
            labels = labels.detach().to(embeddings.device)
        self._distance = get_distance(metric)
        self._chunk_budget = check_int(chunk_budget, "chunk_budget", low=1)
        self._embeddings = embeddings.detach()
        self._labels = labels
        self._prepared = self._distance.prepare(self._embeddings)
        norms = self._prepared.norm(dim=1)
        scale = float(norms.max().clamp_min(1.0))  # normalized: 1
        eps = torch.finfo(self._embeddings.dtype).eps
        # distances computed by different kernels (a candidate's own, the gallery's) may
        # differ by rounding; closer than this counts as a tie, not as "strictly closer"
        self._tie_tol = 8.0 * math.sqrt(self.dim) * eps * 2.0 * scale
        self._duplicate_tol = max(1e-5 * float(norms.mean().clamp_min(1.0)), self._tie_tol)

    # construction -----------------------------------------------------------------
    @classmethod
    def from_inputs(
        cls,
        model: Callable[[Tensor], Tensor],
        inputs: Tensor | torch.utils.data.Dataset[Any] | torch.utils.data.DataLoader[Any],
        labels: Tensor | None = None,
        metric: str | Distance = "cosine",
        batch_size: int = 256,
        *,
        chunk_budget: int = DEFAULT_CHUNK_BUDGET,
        progress: bool = False,
    ) -> Gallery:
        """Embed ``inputs`` with ``model`` (in eval mode, without gradients) in batches.

        Parameters
        ----------
        model : callable
            Maps ``[B, *S]`` inputs to ``[B, D]`` embeddings.
        inputs : Tensor, Dataset or DataLoader
            ``[|X|, *S]`` inputs in ``[0, 1]``; or a ``torch.utils.data.Dataset`` (read in
            batches of ``batch_size``) or ``DataLoader`` whose items / batches are inputs
            or ``(inputs, labels)`` pairs. Batches of a Dataset or DataLoader are moved to
            the device of the model's parameters (the CPU for a model without any).
        labels : Tensor, optional
            ``[|X|]`` labels; taken from the ``(inputs, labels)`` pairs of a Dataset or
            DataLoader when not given.
        batch_size : int
            Inputs embedded per forward pass (a DataLoader keeps its own batches).
        progress : bool
            Show a tqdm progress bar.

        Examples
        --------
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from rankattack import Gallery
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> data = TensorDataset(torch.rand(10, 1, 2, 2), torch.arange(10) % 2)
        >>> g = Gallery.from_inputs(model, data, batch_size=4)
        >>> len(g), g.labels.tolist()[:4]
        (10, [0, 1, 0, 1])
        """
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        batch_size = check_int(batch_size, "batch_size", low=1)
        if isinstance(inputs, torch.utils.data.Dataset | torch.utils.data.DataLoader):
            embeddings, loaded = _embed_loader(model, inputs, batch_size, progress)
            if labels is None:
                labels = loaded
            return cls(embeddings, labels, metric, chunk_budget=chunk_budget)
        check_tensor(inputs, "inputs", min_ndim=2, floating=True)
        if inputs.shape[0] < 1:
            raise ValueError(f"inputs must hold at least one item, got shape {tuple(inputs.shape)}")
        chunks = []
        starts: Any = range(0, inputs.shape[0], batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="embedding gallery", unit="batch")
        with eval_mode(model), torch.no_grad():
            for s in starts:
                out = model(inputs[s : s + batch_size])
                check_embedding_output(out, inputs[s : s + batch_size].shape[0], "model")
                chunks.append(out.detach())
        return cls(torch.cat(chunks), labels, metric, chunk_budget=chunk_budget)

    def to(self, device: str | torch.device) -> Gallery:
        """The same gallery (embeddings, labels, metric, chunk budget) on ``device``.

        Returns ``self`` when it is there already, like ``Tensor.to``.
        """
        embeddings = self._embeddings.to(device)
        if embeddings is self._embeddings:
            return self
        labels = None if self._labels is None else self._labels.to(embeddings.device)
        return Gallery(embeddings, labels, self._distance, chunk_budget=self._chunk_budget)

    # properties ---------------------------------------------------------------------
    @property
    def embeddings(self) -> Tensor:
        """``[|X|, D]`` raw embeddings."""
        return self._embeddings

    @property
    def prepared(self) -> Tensor:
        """``[|X|, D]`` embeddings as the distance sees them (L2-normalized unless Euclidean)."""
        return self._prepared

    @property
    def labels(self) -> Tensor | None:
        """``[|X|]`` labels, or ``None``."""
        return self._labels

    @property
    def metric(self) -> str:
        """Name of the distance: ``"cosine"``, ``"euclidean"`` or ``"normalized-euclidean"``."""
        return self._distance.name

    @property
    def distance(self) -> Distance:
        """The [Distance][rankattack.distances.Distance] object."""
        return self._distance

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self._embeddings.shape[1])

    @property
    def chunk_budget(self) -> int:
        """Bound on the elements of any gallery-wide intermediate."""
        return self._chunk_budget

    @property
    def duplicate_tol(self) -> float:
        """Distance below which two embeddings are treated as copies of one item."""
        return self._duplicate_tol

    @property
    def tie_tol(self) -> float:
        """Distances closer than this count as ties in ranks (rounding of the kernels)."""
        return self._tie_tol

    def __len__(self) -> int:
        return int(self._embeddings.shape[0])

    def __repr__(self) -> str:
        return (
            f"Gallery(size={len(self)}, dim={self.dim}, metric={self.metric!r}, "
            f"labels={'yes' if self._labels is not None else 'no'}, "
            f"device={self._embeddings.device}, chunk_budget={self._chunk_budget})"
        )

    # checks -------------------------------------------------------------------------
    def check_embeddings(self, value: Any, name: str, ndim: int) -> Tensor:
        """Validate embeddings of rank ``ndim`` whose last dimension is D; move to device."""
        check_tensor(value, name, ndim=ndim, floating=True)
        if value.shape[-1] != self.dim:
            raise ValueError(
                f"{name} must have embedding dimension {self.dim} (the gallery's) in its "
                f"last axis, got shape {tuple(value.shape)}"
            )
        check_finite(value, name)
        return value.detach().to(device=self._embeddings.device, dtype=self._embeddings.dtype)

    def check_indices(self, value: Any, name: str, ndim: int = 2) -> Tensor:
        """Validate int64 gallery indices (in ``[0, |X|)``)."""
        check_tensor(value, name, ndim=ndim, integer=True)
        if value.numel() and (int(value.min()) < 0 or int(value.max()) >= len(self)):
            raise ValueError(
                f"{name} must index the gallery: values in [0, {len(self) - 1}], got "
                f"values in [{int(value.min())}, {int(value.max())}]"
            )
        return value.to(device=self._embeddings.device, dtype=torch.long)

    # queries ------------------------------------------------------------------------
    def _blocks(self, rows: int) -> list[tuple[int, int]]:
        return row_chunks(rows, len(self), self._chunk_budget)

    def distances(self, query_embeddings: Tensor) -> Tensor:
        """Full ``[M, |X|]`` distance matrix from raw ``query_embeddings`` ``[M, D]``.

        Allocates the whole matrix; prefer [rank][rankattack.gallery.Gallery.rank] and
        [topk][rankattack.gallery.Gallery.topk] for large X.
        """
        q = self._distance.prepare(self.check_embeddings(query_embeddings, "query_embeddings", 2))
        return self.distances_prepared(q)

    def distances_prepared(self, anchors: Tensor) -> Tensor:
        """Full ``[M, |X|]`` matrix of exact distances from prepared ``anchors`` ``[M, D]``."""
        return torch.cat(
            [
                self._distance.pairwise_exact(anchors, self._prepared[s:e])
                for s, e in self._blocks(anchors.shape[0])
            ],
            dim=1,
        )

    def rank(self, query_embeddings: Tensor, candidate_embeddings: Tensor) -> Tensor:
        """Normalized ranks of candidates with respect to queries (paper Sec. 4).

        ``R(q, c) = |{x in X : d(q, x) < d(q, c)}| / |X|``: 0 is the top of the list.

        Parameters
        ----------
        query_embeddings : Tensor
            ``[N, D]`` raw query embeddings.
        candidate_embeddings : Tensor
            ``[N, k, D]`` raw candidate embeddings, k candidates per query.

        Returns
        -------
        Tensor
            ``[N, k]`` normalized ranks in ``[0, 1]``.
        """
        q = self.check_embeddings(query_embeddings, "query_embeddings", 2)
        c = self.check_embeddings(candidate_embeddings, "candidate_embeddings", 3)
        if c.shape[0] != q.shape[0]:
            raise ValueError(
                f"candidate_embeddings must be [N, k, D] with N = {q.shape[0]} (one row per "
                f"query), got shape {tuple(c.shape)}"
            )
        with torch.no_grad():
            qp = self._distance.prepare(q)
            t = self._distance.paired(qp.unsqueeze(1), self._distance.prepare(c))
            return self.count_closer(qp, t).to(t.dtype) / len(self)

    def count_closer(self, anchors: Tensor, thresholds: Tensor) -> Tensor:
        """``|{x : d(a_i, x) < t_ij}|`` for prepared anchors ``[M, D]`` and ``t`` ``[M, k]``.

        Distances within [tie_tol][rankattack.gallery.Gallery.tie_tol] of the threshold count as
        ties (not closer).
        """
        m, k = thresholds.shape
        counts = torch.zeros(m, k, dtype=torch.long, device=thresholds.device)
        limits = thresholds - self._tie_tol
        for s, e in row_chunks(m * k, len(self), self._chunk_budget):
            d = self._distance.pairwise_exact(anchors, self._prepared[s:e])
            counts += (d.unsqueeze(1) < limits.unsqueeze(2)).sum(-1)
        return counts

    def topk(
        self,
        query_embeddings: Tensor,
        k: int,
        *,
        exclude_indices: Tensor | None = None,
        exclude_embeddings: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest gallery items of each query, computed block by block.

        Parameters
        ----------
        query_embeddings : Tensor
            ``[N, D]`` raw embeddings.
        k : int
            Neighbours per query (``<= |X|``).
        exclude_indices : Tensor, optional
            ``[N, e]`` gallery indices to skip for each query (``-1`` entries are ignored).
        exclude_embeddings : Tensor, optional
            ``[N, e, D]`` raw embeddings; gallery items within
            [duplicate_tol][rankattack.gallery.Gallery.duplicate_tol] of any of them are skipped
            (copies of the query or of chosen candidates).

        Returns
        -------
        (distances, indices) : tuple of Tensor
            ``[N, k]`` each, nearest first. Rows with fewer than ``k`` eligible items are
            padded with ``inf`` distances and index ``-1``.
        """
        q = self._distance.prepare(self.check_embeddings(query_embeddings, "query_embeddings", 2))
        k = check_int(k, "k", low=0)
        if k > len(self):
            raise ValueError(f"k must be <= the gallery size {len(self)}, got {k}")
        n = q.shape[0]
        ex_idx = None
        if exclude_indices is not None:
            check_tensor(exclude_indices, "exclude_indices", ndim=2, integer=True)
            if exclude_indices.shape[0] != n:
                raise ValueError(
                    f"exclude_indices must have {n} rows, got shape {tuple(exclude_indices.shape)}"
                )
            ex_idx = exclude_indices.to(q.device)
        ex_emb = None
        if exclude_embeddings is not None:
            ex_emb = self._distance.prepare(
                self.check_embeddings(exclude_embeddings, "exclude_embeddings", 3)
            )
            if ex_emb.shape[0] != n:
                raise ValueError(
                    f"exclude_embeddings must have {n} rows, got shape {tuple(ex_emb.shape)}"
                )
        width = 1 + (0 if ex_emb is None else ex_emb.shape[1])
        width += 0 if ex_idx is None else ex_idx.shape[1]
        best_d = q.new_full((n, k), float("inf"))
        best_i = torch.full((n, k), -1, dtype=torch.long, device=q.device)
        with torch.no_grad():
            for s, e in row_chunks(n * width, len(self), self._chunk_budget):
                block = self._prepared[s:e]
                d = self._distance.pairwise_exact(q, block)
                idx = torch.arange(s, e, device=q.device).expand(n, -1)
                if ex_idx is not None:
                    hit = (idx.unsqueeze(2) == ex_idx.unsqueeze(1)).any(-1)
                    d = d.masked_fill(hit, float("inf"))
                if ex_emb is not None:
                    dup = self._batched_pairwise(ex_emb, block) <= self._duplicate_tol
                    d = d.masked_fill(dup.any(1), float("inf"))
                cat_d = torch.cat([best_d, d], dim=1)
                cat_i = torch.cat([best_i, idx], dim=1)
                best_d, pos = torch.topk(cat_d, k, dim=1, largest=False, sorted=True)
                best_i = torch.gather(cat_i, 1, pos)
        best_i = best_i.masked_fill(torch.isinf(best_d), -1)
        return best_d, best_i

    def _batched_pairwise(self, a: Tensor, block: Tensor) -> Tensor:
        """Distances ``[N, e, D]`` x ``[K, D]`` -> ``[N, e, K]``."""
        n, e, d = a.shape
        return self._distance.pairwise_exact(a.reshape(n * e, d), block).reshape(n, e, -1)

    def hinge(self, anchors: Tensor, thresholds: Tensor, signs: Sequence[float]) -> Tensor:
        """Sums of ranking hinges over the gallery (the inner sums of Eq. 4, 7, 9, 11).

        ``H[i, j] = sum_x [ s_j * (t_ij - d(a_i, x)) ]_+``: with ``s_j = +1`` it is the
        cost of every gallery item closer to anchor i than the threshold (raise); with
        ``s_j = -1``, of every item farther (lower). Differentiable with respect to the
        prepared ``anchors`` ``[M, D]`` and ``thresholds`` ``[M, k]``; the gradient is
        computed block by block without storing ``[M, |X|]`` matrices beyond the budget.

        Parameters
        ----------
        anchors : Tensor
            ``[M, D]`` prepared embeddings (``gallery.distance.prepare(...)``).
        thresholds : Tensor
            ``[M, k]`` distances to compare against.
        signs : sequence of float
            ``k`` values, each +1 (raise) or -1 (lower).

        Notes
        -----
        On the CPU the k sums cost one pass over each block of distances together: each
        distance is placed among its anchor's k thresholds, and per-interval counts and
        float64 sums give every sum (so the cost barely grows with k). A distance equal
        to its threshold contributes nothing, to the value or to the gradient.
        """
        check_tensor(anchors, "anchors", ndim=2, floating=True)
        check_tensor(thresholds, "thresholds", ndim=2, floating=True)
        if anchors.shape[1] != self.dim or thresholds.shape[0] != anchors.shape[0]:
            raise ValueError(
                f"anchors must be [M, {self.dim}] and thresholds [M, k] with the same M, got "
                f"shapes {tuple(anchors.shape)} and {tuple(thresholds.shape)}"
            )
        if anchors.device != self._prepared.device or thresholds.device != anchors.device:
            raise ValueError(
                f"anchors and thresholds must be on the gallery's device {self._prepared.device}, "
                f"got {anchors.device} and {thresholds.device}"
            )
        signs = tuple(float(v) for v in signs)
        if len(signs) != thresholds.shape[1] or any(v not in (1.0, -1.0) for v in signs):
            raise ValueError(
                f"signs must hold {thresholds.shape[1]} values of +1 or -1, got {list(signs)}"
            )
        fused = fused_hinge(anchors.device)
        out: Tensor = _GalleryHinge.apply(
            anchors, thresholds, signs, self._prepared, self._distance, self._chunk_budget, fused
        )
        return out


#: Distances handled at a time by the fused hinge: a tile stays in cache, and each of its
#: operations runs on the calling thread (PyTorch spreads an elementwise operation over
#: threads only beyond 32768 elements), so the hinge never waits for a second thread
#: that a busy machine has not scheduled.
_TILE = 2**15

#: Up to this many thresholds per anchor, a distance's interval is found by comparing it
#: with each (fast vectorized passes); beyond, by one binary search per distance.
_COMPARE_MAX = 32

#: Histogram lanes: neighbouring distances of one anchor count into different copies of
#: its bins, so that the histogram's additions do not wait on one another.
_LANES = 8


class _Intervals:
    """The k thresholds of each anchor as boundaries of k + 1 distance intervals.

    Target j of anchor i is active for a distance d when ``d < t_ij`` (sign +1) or
    ``d > t_ij`` (sign -1). Both are one comparison ``u_ij <= d`` against the boundary
    ``u_ij = t_ij`` (sign +1: active when false) or ``u_ij = nextafter(t_ij, +inf)``
    (sign -1: active when true). So a distance's interval ``c = |{j : u_ij <= d}|``
    tells which targets it activates: target j, at position ``p_ij`` among the row's
    sorted boundaries, is active exactly when ``c <= p_ij`` (sign +1) or ``c > p_ij``
    (sign -1). A distance equal to a threshold activates nothing, as in the hinge
    ``[s (t - d)]_+``.

    The distance of anchor i to gallery item x, in interval c, counts into histogram bin
    ``(i (k + 1) + c) L + l``, with lane ``l`` = x's column in its tile mod L
    (L = ``_LANES``).

    Parameters
    ----------
    thresholds : Tensor
        ``[M, k]`` thresholds (detached here).
    signs : tuple of float
        ``k`` values, +1 or -1.
    dtype : torch.dtype
        Dtype the distances are compared in.
    """

    def __init__(self, thresholds: Tensor, signs: tuple[float, ...], dtype: torch.dtype) -> None:
        m, k = thresholds.shape
        device = thresholds.device
        t = thresholds.detach().to(dtype)
        self.k = k
        self.dtype = dtype
        self.raise_ = torch.tensor([v > 0 for v in signs], device=device)  # [k]
        bounds = torch.where(self.raise_, t, torch.nextafter(t, t.new_full((), math.inf)))
        ordered, order = bounds.sort(dim=1, stable=True)
        self.sorted = ordered.contiguous()  # [M, k]
        self.columns = ordered.T.contiguous().unsqueeze(2)  # [k, M, 1]: p-th boundaries
        ranks = torch.arange(k, device=device).expand(m, k)
        self.position = torch.empty_like(order).scatter_(1, order, ranks)  # [M, k]
        # active[i, j, c]: target j of anchor i is active in interval c
        below = torch.arange(k + 1, device=device) <= self.position.unsqueeze(2)
        self.active = torch.where(self.raise_.view(1, k, 1), below, ~below)
        self.step = (k + 1) * _LANES  # bins per anchor
        self.size = m * self.step
        self.index = torch.int32 if self.size < 2**31 else torch.long
        # bins are accumulated as 0/1 comparisons written as floats (vectorized, unlike
        # boolean outputs), exact below 2**24 in float32
        small = self.size < 2**24 and dtype != torch.float64
        self.acc = torch.float32 if small else torch.float64

    def locate(self, d: Tensor) -> Tensor:
        """Histogram bins ``[M, B]`` (int32 or int64) of distances ``d`` ``[M, B]``."""
        bins = torch.empty(d.shape, dtype=self.index, device=d.device)
        tiles = _Tiles(d, self)
        for r0, r1, c0, c1 in tiles.ranges:
            self._locate_tile(d, bins, tiles, r0, r1, c0, c1)
        return bins

    def locate_and_count(self, d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Bins of ``d`` ``[M, B]`` and each interval's count and float64 sum of distances.

        Returns bins ``[M, B]``, counts ``[M, k + 1]`` (int64) and sums ``[M, k + 1]``
        (float64). Works on contiguous tiles small enough to stay in cache.
        """
        bins = torch.empty(d.shape, dtype=self.index, device=d.device)
        counts = torch.zeros(self.size, dtype=torch.long, device=d.device)
        sums = torch.zeros(self.size, dtype=torch.float64, device=d.device)
        tiles = _Tiles(d, self)
        for r0, r1, c0, c1 in tiles.ranges:
            x, out = self._locate_tile(d, bins, tiles, r0, r1, c0, c1)
            values = tiles.view(tiles.wide, r1 - r0, c1 - c0).copy_(x)
            counts += torch.bincount(out.view(-1), minlength=self.size)
            sums += torch.bincount(out.view(-1), weights=values.view(-1), minlength=self.size)
        lanes = (-1, self.k + 1, _LANES)
        return bins, counts.view(lanes).sum(2), sums.view(lanes).sum(2)

    def weights(self, table: Tensor, bins: Tensor) -> Tensor:
        """``[M, B]`` entries of the per-interval ``table`` ``[M, k + 1]`` at ``bins``.

        Looked up ``_TILE`` entries at a time, each lookup on the calling thread.
        """
        lanes = table.reshape(-1, 1).expand(-1, _LANES).reshape(-1)
        out = torch.empty(bins.shape, dtype=table.dtype, device=bins.device)
        flat_out, flat_bins = out.view(-1), bins.view(-1)
        for s in range(0, flat_bins.numel(), _TILE):
            torch.index_select(lanes, 0, flat_bins[s : s + _TILE], out=flat_out[s : s + _TILE])
        return out

    def _locate_tile(
        self, d: Tensor, bins: Tensor, tiles: _Tiles, r0: int, r1: int, c0: int, c1: int
    ) -> tuple[Tensor, Tensor]:
        """Write the bins of the tile ``d[r0:r1, c0:c1]``; return it and its bins."""
        x = d[r0:r1, c0:c1]
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        out = bins[r0:r1, c0:c1]
        r, t = x.shape
        if self.k <= _COMPARE_MAX:
            c = tiles.view(tiles.count, r, t)
            above = tiles.view(tiles.above, r, t)
            # start from the tile's interval-0 bins, then L for every boundary <= d
            torch.add(tiles.view(tiles.base, r, t), r0 * self.step, out=c)
            for bound in self.columns[:, r0:r1].unbind(0):
                c.add_(torch.ge(x, bound, out=above), alpha=_LANES)
            out.copy_(c)
        else:
            int32 = self.index == torch.int32
            found = torch.searchsorted(self.sorted[r0:r1], x, right=True, out_int32=int32)
            out.copy_(found).mul_(_LANES).add_(tiles.view(tiles.base, r, t))
            out.add_(r0 * self.step)
        return x, out


class _Tiles:
    """Contiguous tiles of distances ``[M, B]`` (whole rows, or parts of one long row).

    Holds the buffers every tile reuses: the interval-0 bins of a tile's elements
    relative to its first row (``base``), the interval counters and comparisons, and
    the float64 copy of the distances that the histogram sums.
    """

    def __init__(self, d: Tensor, intervals: _Intervals) -> None:
        m, b = d.shape
        if b >= _TILE:
            rows, cols = 1, _TILE
            self.ranges = [
                (r, r + 1, c, min(c + cols, b)) for r in range(m) for c in range(0, b, cols)
            ]
        else:
            rows, cols = min(m, _TILE // max(b, 1)), b
            self.ranges = [(r, min(r + rows, m), 0, b) for r in range(0, m, rows)]
        device = d.device
        lane = torch.arange(cols, device=device).remainder_(_LANES)
        first = torch.arange(rows, device=device).unsqueeze(1) * intervals.step
        dtype = intervals.acc if intervals.k <= _COMPARE_MAX else intervals.index
        self.base = (first + lane).to(dtype)  # [R, T]
        self.count = torch.empty(rows, cols, dtype=intervals.acc, device=device)
        self.above = torch.empty(rows, cols, dtype=intervals.acc, device=device)
        self.wide = torch.empty(rows, cols, dtype=torch.float64, device=device)
        self.shape = (rows, cols)

    def view(self, buffer: Tensor, r: int, t: int) -> Tensor:
        """``buffer`` (one of this object's ``[R, T]`` buffers) cut to ``[r, t]``."""
        return buffer if (r, t) == self.shape else buffer[:r, :t]


def fused_hinge(device: torch.device) -> bool:
    """Whether [Gallery.hinge][rankattack.gallery.Gallery.hinge] serves all targets in one pass
    on ``device`` (the CPU).

    Elsewhere (accelerators, where float atomics would make histograms nondeterministic)
    the targets are processed one at a time.
    """
    return device.type == "cpu"


class _GalleryHinge(torch.autograd.Function):
    """Blockwise ``sum_x [s (t - d(a, x))]_+`` for k targets, with a blockwise backward.

    ``fused`` (see ``fused_hinge``): one pass over each block of distances serves
    all k targets. Each distance is placed among its anchor's k thresholds
    (``_Intervals``); the count and the float64 sum of the distances in each
    interval give every hinge sum, ``n t - S`` (sign +1) or ``S - n t`` (sign -1), and
    the backward weight of a distance depends only on its interval (one lookup in an
    ``[M, k + 1]`` table). Otherwise the targets are processed one at a time, each with
    ``[M, block]`` elementwise passes.
    """

    @staticmethod
    def forward(
        ctx: Any,
        anchors: Tensor,
        thresholds: Tensor,
        signs: tuple[float, ...],
        gallery: Tensor,
        distance: Distance,
        budget: int,
        fused: bool,
    ) -> Tensor:
        m, k = thresholds.shape
        blocks = row_chunks(m, gallery.shape[0], budget)
        keep = ctx.needs_input_grad[0] and len(blocks) == 1
        ctx.signs = signs
        ctx.distance = distance
        ctx.blocks = blocks
        if fused:
            cmp = torch.promote_types(anchors.dtype, thresholds.dtype)
            intervals = _Intervals(thresholds, signs, cmp)
            counts = torch.zeros(m, k + 1, dtype=torch.long, device=thresholds.device)
            sums = torch.zeros(m, k + 1, dtype=torch.float64, device=thresholds.device)
            cached: list[tuple[Tensor, Tensor | None]] = []
            for s, e in blocks:
                d = distance.pairwise(anchors, gallery[s:e])
                bins, n_c, s_c = intervals.locate_and_count(d)
                counts += n_c
                sums += s_c
                if keep:
                    cached.append((d, bins))
            # per target: count and sum of the distances in its active intervals (the
            # totals are the last cumulative sums, so empty tails give exact zeros)
            cum_n, cum_s = counts.cumsum(1), sums.cumsum(1)
            n_le = cum_n.gather(1, intervals.position)
            s_le = cum_s.gather(1, intervals.position)
            up = intervals.raise_
            n = torch.where(up, n_le, cum_n[:, -1:] - n_le)
            # n t is 0 without active distances, also for an infinite threshold (0 inf = nan)
            nt = torch.where(n > 0, n * thresholds.detach().double(), 0.0)
            out = torch.where(up, nt - s_le, (cum_s[:, -1:] - s_le) - nt)
            ctx.intervals = intervals
        else:
            # accumulate in at least float32: half precision cannot count past 2048
            acc = torch.promote_types(thresholds.dtype, torch.float32)
            out = torch.zeros(thresholds.shape, dtype=acc, device=thresholds.device)
            n = torch.zeros(thresholds.shape, dtype=acc, device=thresholds.device)
            cached = []
            for s, e in blocks:
                d = distance.pairwise(anchors, gallery[s:e])
                for j, sign in enumerate(signs):
                    t = thresholds[:, j : j + 1]
                    diff = t - d if sign > 0 else d - t
                    n[:, j] += (diff > 0).sum(-1)
                    out[:, j] += diff.clamp_min_(0.0).sum(-1)
                if keep:
                    cached.append((d, None))
            ctx.intervals = None
        ctx.save_for_backward(anchors, thresholds, n, gallery)
        ctx.cached = cached
        return out.to(thresholds.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        anchors, thresholds, counts, gallery = ctx.saved_tensors
        distance: Distance = ctx.distance
        signs: tuple[float, ...] = ctx.signs
        intervals: _Intervals | None = ctx.intervals
        sign_t = thresholds.new_tensor(signs)
        grad_t = None
        if ctx.needs_input_grad[1]:
            grad_t = (grad_out * sign_t * counts).to(thresholds.dtype)
        grad_a = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.zeros_like(anchors)
            # dH_ij / dd(a_i, x) = -s_j where target j is active
            coef = -(grad_out * sign_t).to(anchors.dtype)  # [M, k]
            table = None
            if intervals is not None:  # one weight per interval
                table = (coef.unsqueeze(2) * intervals.active).sum(1)
            for i, (s, e) in enumerate(ctx.blocks):
                block = gallery[s:e]
                if ctx.cached:
                    d, bins = ctx.cached[i]
                else:
                    d = distance.pairwise(anchors, block)
                    bins = None if intervals is None else intervals.locate(d)
                if intervals is not None and table is not None and bins is not None:
                    weight = intervals.weights(table, bins)
                else:
                    weight = torch.zeros_like(d)
                    for j, sign in enumerate(signs):
                        t = thresholds[:, j : j + 1]
                        active = d < t if sign > 0 else d > t
                        weight.addcmul_(active, coef[:, j : j + 1])
                grad_a += distance.pairwise_grad(anchors, block, d, weight)
        ctx.cached = []
        return grad_a, grad_t, None, None, None, None, None


def _embed_loader(
    model: Callable[[Tensor], Tensor],
    data: torch.utils.data.Dataset[Any] | torch.utils.data.DataLoader[Any],
    batch_size: int,
    progress: bool,
) -> tuple[Tensor, Tensor | None]:
    """Embeddings (and labels, when the batches are ``(inputs, labels)`` pairs) of a Dataset
    or DataLoader, batch by batch, on the device of the model's parameters."""
    loader = (
        data
        if isinstance(data, torch.utils.data.DataLoader)
        else torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    )
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next(params, torch.empty(0)).device
    batches: Any = loader
    if progress:
        from tqdm.auto import tqdm

        total = len(loader) if hasattr(loader, "__len__") else None
        batches = tqdm(loader, desc="embedding gallery", unit="batch", total=total)
    chunks: list[Tensor] = []
    labels: list[Tensor] = []
    pairs: bool | None = None
    with eval_mode(model), torch.no_grad():
        for i, batch in enumerate(batches):
            is_pair = isinstance(batch, list | tuple) and len(batch) == 2
            if isinstance(batch, list | tuple) and len(batch) == 1:
                batch = batch[0]
            if pairs is None:
                pairs = is_pair
            elif pairs != is_pair:
                raise ValueError(
                    f"inputs: batch {i} is {'an (inputs, labels) pair' if is_pair else 'bare'}"
                    f" but batch 0 was not; expected every batch to be the same kind"
                )
            x = batch[0] if is_pair else batch
            check_tensor(x, f"inputs (batch {i})", min_ndim=2, floating=True)
            x = x.to(device)
            out = model(x)
            check_embedding_output(out, x.shape[0], "model")
            chunks.append(out.detach())
            if is_pair:
                y = batch[1]
                check_tensor(y, f"labels (batch {i})", ndim=1, integer=True)
                labels.append(y.detach())
    if not chunks:
        raise ValueError("inputs: the Dataset or DataLoader is empty; expected at least one item")
    embeddings = torch.cat(chunks)
    return embeddings, (torch.cat(labels).to(embeddings.device) if labels else None)


def check_embedding_output(out: Any, batch: int, name: str, dim: int | None = None) -> Tensor:
    """Validate what a model returned: a floating ``[batch, D]`` tensor (shape only, no sync)."""
    if not isinstance(out, Tensor):
        raise TypeError(
            f"{name} must return a [N, D] embedding tensor, got {type(out).__name__}; wrap "
            f"models returning tuples or dicts with rankattack.EmbeddingModel(model, output=...)"
        )
    if out.dim() != 2 or out.shape[0] != batch:
        raise ValueError(
            f"{name} must map a batch of {batch} inputs to [{batch}, D] embeddings, got "
            f"shape {tuple(out.shape)}"
        )
    if not out.is_floating_point():
        raise TypeError(f"{name} must return floating-point embeddings, got dtype {out.dtype}")
    if dim is not None and out.shape[1] != dim:
        raise ValueError(
            f"{name} returned embeddings of dimension {out.shape[1]}, but the gallery's is {dim}"
        )
    return out
