"""A gallery whose rows are split across ranks: attack a candidate set larger than one device.

[ShardedGallery][rankattack.distributed.shardedgallery.ShardedGallery] holds this rank's contiguous
block of the candidate set X (about
|X| / N rows of a job of N ranks) and answers what [Gallery][rankattack.Gallery] answers
for the whole of X. Every rank runs the same attack on the same inputs (the batch is
replicated, the gallery is not); the gallery-wide sums are split by rows and combined
with collectives of the batch's size, never of the gallery's:

- ranks ([count_closer][rankattack.distributed.shardedgallery.ShardedGallery.count_closer],
  [rank][rankattack.distributed.shardedgallery.ShardedGallery.rank]): the counts of closer items of
  each shard are summed, one all-reduce of ``[B, k]`` integers;
- nearest neighbours ([topk][rankattack.distributed.shardedgallery.ShardedGallery.topk]): each
  shard's k best, all-gathered (``[B, k]`` distances and indices from each rank) and merged;
- the differentiable hinge sums of the ranking objectives
  ([hinge][rankattack.distributed.shardedgallery.ShardedGallery.hinge], the inner sums of Zhou et
  al., ECCV 2020, Eq. 4, 7, 9, 11): the shards' partial sums are all-reduced in the forward pass
  (``[B, k]``), and the gradients they send back to the thresholds (``[B, k]``) and, when the
  anchors move (a query attack), to the anchors (``[B, D]``) are all-reduced in the backward pass;
- gallery rows by position (``gallery.embeddings[indices]``, ``gallery.labels[indices]``):
  fetched from the ranks that hold them, one all-reduce of ``[*indices.shape, D]``.

Counts are integers, so every reported rank equals the unsharded gallery's exactly; sums
and gradients equal it up to the order of floating-point additions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from rankattack._validation import check_int, check_tensor
from rankattack.distances import Distance
from rankattack.distributed.collectives import all_gather_objects
from rankattack.distributed.environment import environment
from rankattack.distributed.sharding import shard_range
from rankattack.gallery import DEFAULT_CHUNK_BUDGET, Gallery

__all__ = ["LocalRows", "ShardedGallery"]


def _active() -> bool:
    return environment().active


class _SumForward(torch.autograd.Function):
    """All-reduce (sum) of the shards' partial results; the gradient passes unchanged.

    Every rank computes the same loss from the sum, so the gradient arriving here is the
    same on every rank and is already the gradient of each partial result.
    """

    @staticmethod
    def forward(ctx: Any, partial: Tensor) -> Tensor:
        total = partial.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class _SumBackward(torch.autograd.Function):
    """Identity forward; the backward all-reduces (sums) the gradient of the shards.

    Placed on the replicated inputs of a shard's computation: each shard contributes the
    gradient through its own rows, and the input's gradient is their sum.
    """

    @staticmethod
    def forward(ctx: Any, value: Tensor) -> Tensor:
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class LocalRows(Tensor):
    """This rank's rows of a
    [ShardedGallery][rankattack.distributed.shardedgallery.ShardedGallery]'s embeddings or labels.

    It is the local tensor for everything but indexing: shape, device, dtype and
    arithmetic see this rank's rows only. Indexing with an integer tensor takes gallery
    positions in ``[0, |X|)`` and returns those rows of the whole gallery, fetched from
    the ranks that hold them (a collective: every rank must index alike, which the
    replicated attack code does). Slices, integers and masks are refused, since they
    would silently mean local rows; use
    [ShardedGallery.local_embeddings][rankattack.distributed.shardedgallery.ShardedGallery.local_embeddings]
    for those.
    """

    _gallery: ShardedGallery

    @staticmethod
    def wrap(local: Tensor, gallery: ShardedGallery) -> LocalRows:
        """View ``local`` (this rank's rows of ``gallery``) as
        [LocalRows][rankattack.distributed.shardedgallery.LocalRows]."""
        out = local.as_subclass(LocalRows)
        out._gallery = gallery
        return out

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        with torch._C.DisableTorchFunctionSubclass():
            if func is Tensor.__getitem__ and isinstance(args[0], LocalRows):
                return args[0]._gallery._fetch(args[0].as_subclass(Tensor), args[1])
            return func(*args, **(kwargs or {}))


class ShardedGallery(Gallery):
    """The candidate set X split by rows across the ranks of a job.

    Parameters
    ----------
    shard : Gallery
        This rank's rows of X, in rank order (rank 0 holds the first rows). Its tensors
        are used as they are (nothing is copied); its tie and duplicate tolerances are
        set to the whole gallery's. Every rank must hold at least one row, and all shards
        the same dimension, dtype, metric and presence of labels.

    Notes
    -----
    Construction, and every method below, is a collective: all ranks call it together
    with the same arguments (the attack code, run on every rank on the same inputs, does
    so). Without a job (one process) it is the gallery of ``shard``. Attacks that rank
    through the gallery's methods work on it unchanged:
    [CandidateAttack][rankattack.CandidateAttack], [QueryAttack][rankattack.QueryAttack] (with its
    semantics-preserving set), [TargetedMismatchAttack][rankattack.TargetedMismatchAttack], GTT. LTM
    and GTM scan the rows themselves and are refused (a ``TypeError`` from
    [LocalRows][rankattack.distributed.shardedgallery.LocalRows]). A rank holding every row (one
    process) behaves as a plain gallery in everything.

    Examples
    --------
    >>> import torch
    >>> from rankattack.distributed import ShardedGallery
    >>> g = ShardedGallery.from_full(torch.eye(4), metric="cosine")  # one process: all rows
    >>> g.rank(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]))
    tensor([[0.2500]])
    """

    def __init__(self, shard: Gallery) -> None:
        if not isinstance(shard, Gallery) or isinstance(shard, ShardedGallery):
            raise TypeError(
                f"shard must be a rankattack.Gallery of this rank's rows, got "
                f"{type(shard).__name__}"
            )
        self._shard = shard
        env = environment()
        local = (len(shard), shard.dim, str(shard.embeddings.dtype), shard.metric)
        described = all_gather_objects((*local, shard.labels is not None))
        for what, pos in (("dimension", 1), ("dtype", 2), ("metric", 3), ("labels", 4)):
            values = {d[pos] for d in described}
            if len(values) > 1:
                raise ValueError(
                    f"shard: every rank's rows must share one {what}, got "
                    + ", ".join(f"rank {r}: {d[pos]!r}" for r, d in enumerate(described))
                )
        sizes = [int(d[0]) for d in described]
        self._offset = sum(sizes[: env.rank])
        self._size = sum(sizes)
        self._set_tolerances()

    # construction -----------------------------------------------------------------
    @classmethod
    def from_full(
        cls,
        embeddings: Tensor,
        labels: Tensor | None = None,
        metric: str | Distance = "cosine",
        *,
        chunk_budget: int = DEFAULT_CHUNK_BUDGET,
    ) -> ShardedGallery:
        """This rank's rows of the whole ``[|X|, D]`` embeddings (sliced, not copied)."""
        check_tensor(embeddings, "embeddings", ndim=2, floating=True)
        lo, hi = cls._rows(int(embeddings.shape[0]), "embeddings")
        part = None if labels is None else labels[lo:hi]
        return cls(Gallery(embeddings[lo:hi], part, metric, chunk_budget=chunk_budget))

    @classmethod
    def from_inputs(
        cls,
        model: Callable[[Tensor], Tensor],
        inputs: Tensor | Any,
        labels: Tensor | None = None,
        metric: str | Distance = "cosine",
        batch_size: int = 256,
        *,
        chunk_budget: int = DEFAULT_CHUNK_BUDGET,
        progress: bool = False,
    ) -> ShardedGallery:
        """Embed this rank's rows of ``inputs`` ``[|X|, *S]`` (each rank embeds |X| / N).

        ``inputs`` may live on the host (or be any tensor indexable by rows); only this
        rank's rows are embedded, on the model's device. Unlike
        [Gallery.from_inputs][rankattack.gallery.Gallery.from_inputs] it takes a tensor only
        (a Dataset or DataLoader is not split by rows).
        """
        check_tensor(inputs, "inputs", min_ndim=2, floating=True)
        lo, hi = cls._rows(int(inputs.shape[0]), "inputs")
        part = None if labels is None else labels[lo:hi]
        shard = Gallery.from_inputs(
            model, inputs[lo:hi], part, metric, batch_size,
            chunk_budget=chunk_budget, progress=progress,
        )  # fmt: skip
        return cls(shard)

    @staticmethod
    def _rows(n: int, name: str) -> tuple[int, int]:
        world = environment().world_size
        if n < world:
            raise ValueError(
                f"{name} must hold at least one row per rank ({world} ranks), got {n} rows"
            )
        return shard_range(n)

    def _set_tolerances(self) -> None:
        """The whole gallery's tie and duplicate tolerances (those of one Gallery of X)."""
        prepared = self._shard.prepared
        norms = prepared.norm(dim=1)
        top = norms.max().reshape(1)
        total = norms.double().sum().reshape(1)
        if _active():
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
            dist.all_reduce(total)
        scale = max(float(top), 1.0)
        eps = torch.finfo(prepared.dtype).eps
        tie = 8.0 * math.sqrt(self.dim) * eps * 2.0 * scale
        mean = float(total) / self._size
        # the shard's own tolerances were computed from its rows alone
        self._shard._tie_tol = tie
        self._shard._duplicate_tol = max(1e-5 * max(mean, 1.0), tie)

    # properties ---------------------------------------------------------------------
    @property
    def shard(self) -> Gallery:
        """This rank's rows as a plain [Gallery][rankattack.Gallery]."""
        return self._shard

    @property
    def offset(self) -> int:
        """Gallery position of this rank's first row."""
        return self._offset

    @property
    def local_embeddings(self) -> Tensor:
        """``[n, D]`` embeddings of this rank's rows ``[offset, offset + n)``."""
        return self._shard.embeddings

    @property
    def embeddings(self) -> Tensor:
        """This rank's raw embeddings as
        [LocalRows][rankattack.distributed.shardedgallery.LocalRows] (index with gallery
        positions)."""
        return LocalRows.wrap(self._shard.embeddings, self)

    @property
    def prepared(self) -> Tensor:
        """This rank's prepared embeddings as
        [LocalRows][rankattack.distributed.shardedgallery.LocalRows]."""
        return LocalRows.wrap(self._shard.prepared, self)

    @property
    def labels(self) -> Tensor | None:
        """This rank's labels as [LocalRows][rankattack.distributed.shardedgallery.LocalRows] (index
        with gallery positions), or None."""
        labels = self._shard.labels
        return None if labels is None else LocalRows.wrap(labels, self)

    @property
    def metric(self) -> str:
        return self._shard.metric

    @property
    def distance(self) -> Distance:
        return self._shard.distance

    @property
    def dim(self) -> int:
        return self._shard.dim

    @property
    def chunk_budget(self) -> int:
        return self._shard.chunk_budget

    @property
    def duplicate_tol(self) -> float:
        return self._shard.duplicate_tol

    @property
    def tie_tol(self) -> float:
        return self._shard.tie_tol

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        env = environment()
        n = len(self._shard)
        return (
            f"ShardedGallery(size={self._size}, dim={self.dim}, metric={self.metric!r}, "
            f"labels={'yes' if self._shard.labels is not None else 'no'}, "
            f"rank={env.rank}/{env.world_size}, rows=[{self._offset}, {self._offset + n}), "
            f"device={self._shard.embeddings.device}, chunk_budget={self.chunk_budget})"
        )

    # checks -------------------------------------------------------------------------
    def check_embeddings(self, value: Any, name: str, ndim: int) -> Tensor:
        return self._shard.check_embeddings(value, name, ndim)

    def check_indices(self, value: Any, name: str, ndim: int = 2) -> Tensor:
        """Validate int64 gallery positions (in ``[0, |X|)``, the whole gallery's)."""
        check_tensor(value, name, ndim=ndim, integer=True)
        if value.numel() and (int(value.min()) < 0 or int(value.max()) >= self._size):
            raise ValueError(
                f"{name} must index the gallery: values in [0, {self._size - 1}], got "
                f"values in [{int(value.min())}, {int(value.max())}]"
            )
        return value.to(device=self._shard.embeddings.device, dtype=torch.long)

    # rows by position ---------------------------------------------------------------
    def lookup(self, indices: Tensor) -> Tensor:
        """Raw embeddings ``[*indices.shape, D]`` of gallery positions ``indices``."""
        return self._fetch(self._shard.embeddings, indices)

    def _fetch(self, local: Tensor, index: Any) -> Tensor:
        """Rows ``index`` (gallery positions) of the whole gallery, ``local`` being ours."""
        positions = isinstance(index, Tensor) and index.dtype not in (torch.bool, torch.uint8)
        if not positions:
            if local.shape[0] == self._size:  # one rank holds every row: plain indexing
                return local[index]
            raise TypeError(
                f"a ShardedGallery's embeddings and labels hold only this rank's rows "
                f"[{self._offset}, {self._offset + len(self._shard)}); index them with a "
                f"tensor of gallery positions (fetched from their ranks), or use "
                f"local_embeddings / shard for this rank's rows; got index {type(index).__name__}"
                + (f" of dtype {index.dtype}" if isinstance(index, Tensor) else "")
            )
        idx = self.check_indices(index, "index", ndim=index.dim())
        pos = idx - self._offset
        mine = (pos >= 0) & (pos < local.shape[0])
        out = local.new_zeros((*idx.shape, *local.shape[1:]))
        out[mine] = local[pos[mine]]
        if not _active():
            return out
        # one owner per row and zeros elsewhere: an integer sum of the bit patterns is exact
        if out.is_floating_point() and out.element_size() in (4, 8):
            bits = out.view(torch.int32 if out.element_size() == 4 else torch.int64)
            dist.all_reduce(bits)
            return bits.view(out.dtype)
        dist.all_reduce(out)
        return out

    # gallery-wide answers -------------------------------------------------------------
    def _blocks(self, rows: int) -> list[tuple[int, int]]:
        if len(self._shard) == self._size:
            return self._shard._blocks(rows)
        raise NotImplementedError(
            "a ShardedGallery has no blocks over all of its rows on one rank; use its "
            "count_closer, topk and hinge, which combine the shards"
        )

    def distances(self, query_embeddings: Tensor) -> Tensor:
        """Full ``[M, |X|]`` distances, gathered from every shard (moves M |X| values)."""
        q = self.distance.prepare(self.check_embeddings(query_embeddings, "query_embeddings", 2))
        return self.distances_prepared(q)

    def distances_prepared(self, anchors: Tensor) -> Tensor:
        """Full ``[M, |X|]`` exact distances from prepared ``anchors`` (all-gathered)."""
        local = self._shard.distances_prepared(anchors)
        if not _active():
            return local
        sizes = [int(s) for s in all_gather_objects(local.shape[1])]
        width = max(sizes)
        padded = local.new_zeros(local.shape[0], width)
        padded[:, : local.shape[1]] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([p[:, :s] for p, s in zip(parts, sizes, strict=True)], dim=1)

    def count_closer(self, anchors: Tensor, thresholds: Tensor) -> Tensor:
        """``|{x in X : d(a_i, x) < t_ij}|`` summed over the shards (exact integers)."""
        counts = self._shard.count_closer(anchors, thresholds)
        if _active():
            dist.all_reduce(counts)
        return counts

    def rank(self, query_embeddings: Tensor, candidate_embeddings: Tensor) -> Tensor:
        """Normalized ranks ``R(q, c)`` in the whole gallery (see
        [Gallery.rank][rankattack.gallery.Gallery.rank])."""
        q = self.check_embeddings(query_embeddings, "query_embeddings", 2)
        c = self.check_embeddings(candidate_embeddings, "candidate_embeddings", 3)
        if c.shape[0] != q.shape[0]:
            raise ValueError(
                f"candidate_embeddings must be [N, k, D] with N = {q.shape[0]} (one row per "
                f"query), got shape {tuple(c.shape)}"
            )
        with torch.no_grad():
            qp = self.distance.prepare(q)
            t = self.distance.paired(qp.unsqueeze(1), self.distance.prepare(c))
            return self.count_closer(qp, t).to(t.dtype) / self._size

    def topk(
        self,
        query_embeddings: Tensor,
        k: int,
        *,
        exclude_indices: Tensor | None = None,
        exclude_embeddings: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest items of the whole gallery (see
        [Gallery.topk][rankattack.gallery.Gallery.topk]).

        Each shard finds its own k nearest; the ``[N, k]`` candidates of every rank are
        all-gathered and merged. Among items at exactly equal distances the lower
        gallery position comes first.
        """
        k = check_int(k, "k", low=0)
        if k > self._size:
            raise ValueError(f"k must be <= the gallery size {self._size}, got {k}")
        n_local = len(self._shard)
        local_ex = None
        if exclude_indices is not None:
            check_tensor(exclude_indices, "exclude_indices", ndim=2, integer=True)
            pos = exclude_indices.to(self._shard.embeddings.device, torch.long) - self._offset
            local_ex = pos.masked_fill((pos < 0) | (pos >= n_local), -1)
        d, i = self._shard.topk(
            query_embeddings,
            min(k, n_local),
            exclude_indices=local_ex,
            exclude_embeddings=exclude_embeddings,
        )
        i = torch.where(i >= 0, i + self._offset, i)
        if d.shape[1] < k:
            d = torch.cat([d, d.new_full((d.shape[0], k - d.shape[1]), float("inf"))], 1)
            i = torch.cat([i, i.new_full((i.shape[0], k - i.shape[1]), -1)], 1)
        if not _active():
            return d, i
        ds = [torch.empty_like(d) for _ in range(environment().world_size)]
        is_ = [torch.empty_like(i) for _ in ds]
        dist.all_gather(ds, d.contiguous())
        dist.all_gather(is_, i.contiguous())
        all_d, all_i = torch.cat(ds, 1), torch.cat(is_, 1)
        order = torch.sort(all_d, dim=1, stable=True).indices[:, :k]
        best_d = torch.gather(all_d, 1, order)
        best_i = torch.gather(all_i, 1, order).masked_fill(torch.isinf(best_d), -1)
        return best_d, best_i

    def hinge(self, anchors: Tensor, thresholds: Tensor, signs: Sequence[float]) -> Tensor:
        """Hinge sums over the whole gallery (see
        [Gallery.hinge][rankattack.gallery.Gallery.hinge]), differentiable.

        Forward: the shards' partial sums, all-reduced (``[M, k]``). Backward: the
        thresholds' gradient (``[M, k]``) and, when the anchors require one, the anchors'
        (``[M, D]``) are all-reduced; the gallery never moves.
        """
        if not _active():
            return self._shard.hinge(anchors, thresholds, signs)
        a = _SumBackward.apply(anchors) if anchors.requires_grad else anchors
        t = _SumBackward.apply(thresholds) if thresholds.requires_grad else thresholds
        partial = self._shard.hinge(a, t, signs)
        out: Tensor = _SumForward.apply(partial)
        return out
