"""What a black-box attacker observes: a ranking service that answers queries with ids.

A [RankingOracle][rankattack.blackbox.oracle.RankingOracle] takes query images and returns, for
each, the ranked ids of the gallery items it retrieves (the top ``top_n``, or the whole list),
optionally with their distances. It counts every image sent on behalf of each attacked query and
refuses to go past a per-query budget, before anything is sent.
[ModelOracle][rankattack.blackbox.oracle.ModelOracle] simulates a service with a model and a
[Gallery][rankattack.Gallery]; [HTTPOracle][rankattack.blackbox.HTTPOracle] talks to a real one.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_tensor, check_unit_range
from rankattack.distances import row_chunks
from rankattack.gallery import Gallery, check_embedding_output
from rankattack.wrappers import eval_mode

__all__ = ["BudgetExceededError", "ModelOracle", "OracleError", "RankingOracle"]

logger = logging.getLogger(__name__)


class OracleError(RuntimeError):
    """The ranking service failed or answered something unusable."""


class BudgetExceededError(OracleError):
    """A query would go past its budget of oracle queries (nothing was sent)."""


def check_budget(value: Any, name: str = "budget") -> int | None:
    """``None`` (unlimited) or an int ``>= 1``."""
    return None if value is None else check_int(value, name, low=1)


class RankingOracle(ABC):
    """A ranking service seen from outside: images in, ranked gallery ids out, every query counted.

    Parameters
    ----------
    top_n : int or None
        Length of the visible list; ``None``: the whole ranked gallery.
    return_scores : bool
        Also return the distances of the listed items.
    budget : int or None
        Queries allowed per attacked query (``None``: unlimited). A call that would take
        any query past it raises
        [BudgetExceededError][rankattack.blackbox.oracle.BudgetExceededError] and sends nothing.

    Notes
    -----
    Every call takes an optional ``owner`` ``[M]``: the slot (attacked query) each image
    is charged to; by default image i is charged to slot i, so ``oracle(queries)`` charges
    one query to each of the B slots. ``queries_used`` ``[Q]`` holds the counts per
    slot (grown as needed) and ``reset`` clears them; the attacks reset the oracle at
    the start of a run and charge each population to the query it searches for.
    """

    def __init__(self, top_n: int | None, return_scores: bool, budget: int | None) -> None:
        self.top_n = None if top_n is None else check_int(top_n, "top_n", low=1)
        if not isinstance(return_scores, bool):
            raise TypeError(f"return_scores must be a bool, got {type(return_scores).__name__}")
        self.return_scores = return_scores
        self.budget = check_budget(budget)
        self._used = torch.zeros(0, dtype=torch.long)

    # ---------------------------------------------------------------------- accounting
    @property
    def queries_used(self) -> Tensor:
        """``[Q]`` int64 images charged to each slot since the last ``reset`` (CPU)."""
        return self._used.clone()

    def reset(self) -> None:
        """Forget all counts (a new set of attacked queries starts)."""
        self._used = torch.zeros(0, dtype=torch.long)

    def charge(self, owner: Tensor) -> None:
        """Count a query per entry of ``owner`` ``[M]``; past the budget raise, counting none."""
        counts = torch.bincount(owner.detach().cpu(), minlength=self._used.shape[0])
        used = self._used
        if counts.shape[0] > used.shape[0]:
            used = torch.cat([used, used.new_zeros(counts.shape[0] - used.shape[0])])
        after = used + counts
        if self.budget is not None and bool((after > self.budget).any()):
            slot = int(torch.argmax(after))
            raise BudgetExceededError(
                f"query {slot} would use {int(after[slot])} oracle queries, past its budget of "
                f"{self.budget} (it has used {int(used[slot])}); nothing was sent"
            )
        self._used = after

    def _owner(self, owner: Tensor | None, m: int, device: torch.device) -> Tensor:
        if owner is None:
            return torch.arange(m, device=device)
        check_tensor(owner, "owner", ndim=1, integer=True)
        if owner.shape[0] != m:
            raise ValueError(f"owner must hold one slot per image ({m}), got {owner.shape[0]}")
        if m and int(owner.min()) < 0:
            raise ValueError("owner must hold non-negative slots")
        return owner

    # ---------------------------------------------------------------------- queries
    @property
    @abstractmethod
    def gallery_size(self) -> int:
        """Number of items the service ranks (ids are in ``[0, gallery_size)``)."""

    @property
    def visible(self) -> int:
        """Length of the returned lists: ``top_n``, or the gallery size for the whole list."""
        return self.gallery_size if self.top_n is None else min(self.top_n, self.gallery_size)

    @abstractmethod
    def _search(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Ranked ids ``[M, visible]`` (int64) and distances (or ``None``) of ``images``."""

    def _locate(self, images: Tensor, items: Tensor) -> Tensor:
        """Positions ``[M, k]`` of ``items`` in the lists of ``images`` (-1: not visible)."""
        ids, _ = self._search(images)
        return locate_in_lists(ids, items)

    def _order_of(self, images: Tensor, items: Tensor) -> Tensor:
        """Ranks ``[M, k]`` of ``items`` among themselves in the lists (-1: not visible)."""
        return rank_among(self._locate(images, items))

    def _check_images(self, images: Any) -> Tensor:
        check_tensor(images, "images", min_ndim=2, floating=True)
        check_unit_range(images, "images")
        return images

    def __call__(self, images: Tensor, owner: Tensor | None = None) -> Any:
        """Send ``images`` ``[M, *S]`` in ``[0, 1]``; return ranked ids ``[M, visible]`` int64.

        With ``return_scores`` the result is ``(ids, distances)``. ``owner`` ``[M]``: the
        slot each image is charged to (default: image i to slot i).
        """
        images = self._check_images(images)
        self.charge(self._owner(owner, images.shape[0], images.device))
        with torch.no_grad():
            ids, dist = self._search(images.detach())
        if self.return_scores:
            if dist is None:
                raise OracleError("the service returned no scores although return_scores=True")
            return ids, dist
        return ids

    def locate(self, images: Tensor, items: Tensor, owner: Tensor | None = None) -> Tensor:
        """Where ``items`` ``[M, k]`` (gallery ids) appear in the lists of ``images`` ``[M, *S]``.

        One oracle query per image, charged like ``__call__``. Returns ``[M, k]``
        int64 0-based positions, -1 where an item is not in the visible list. This is
        all the list-only attacks need; simulated services answer it without sorting
        the whole gallery.
        """
        images = self._check_images(images)
        check_tensor(items, "items", ndim=2, integer=True)
        if items.shape[0] != images.shape[0]:
            raise ValueError(
                f"items must have one row per image ({images.shape[0]}), got {items.shape[0]}"
            )
        self.charge(self._owner(owner, images.shape[0], images.device))
        with torch.no_grad():
            return self._locate(images.detach(), items.to(images.device))

    def order_of(self, images: Tensor, items: Tensor, owner: Tensor | None = None) -> Tensor:
        """Where ``items`` ``[M, k]`` stand relative to each other in the lists, and if visible.

        One oracle query per image, charged like ``__call__``. Returns ``[M, k]``
        int64: each visible item's rank among the visible items of its row (0 = highest),
        -1 for items outside the visible list. It is ``locate`` reduced to what
        tau_S needs ([order_agreement][rankattack.objectives.order_agreement] gives the same value
        on either); a simulated service answers it without counting the gallery.
        """
        images = self._check_images(images)
        check_tensor(items, "items", ndim=2, integer=True)
        if items.shape[0] != images.shape[0]:
            raise ValueError(
                f"items must have one row per image ({images.shape[0]}), got {items.shape[0]}"
            )
        self.charge(self._owner(owner, images.shape[0], images.device))
        with torch.no_grad():
            return self._order_of(images.detach(), items.to(images.device))


def rank_among(positions: Tensor) -> Tensor:
    """Each item's rank ``[M, k]`` among the visible items of its row (-1 stays -1).

    Keeps exactly what tau_S reads from positions: which items are visible and their
    relative order.
    """
    vis = positions >= 0
    p = positions.unsqueeze(1)
    above = ((p < positions.unsqueeze(2)) & vis.unsqueeze(1)).sum(2)  # visible items above
    return torch.where(vis, above, torch.full_like(above, -1))


def locate_in_lists(ids: Tensor, items: Tensor) -> Tensor:
    """Positions ``[M, k]`` of ``items`` ``[M, k]`` in the lists ``ids`` ``[M, N]`` (-1: absent)."""
    out = torch.full(items.shape, -1, dtype=torch.long, device=ids.device)
    items = items.to(ids.device)
    for j in range(items.shape[1]):  # k is small; each pass is vectorized over rows and N
        eq = ids == items[:, j : j + 1]
        found = eq.any(1)
        out[:, j] = torch.where(found, eq.to(torch.int8).argmax(1), out[:, j])
    return out


class ModelOracle(RankingOracle):
    """A simulated ranking service: a model and a gallery behind the oracle interface.

    Each image is embedded by ``model`` (eval mode, no gradient: the model's parameters
    and their gradients are never touched) and the gallery is ranked by distance, ties
    broken by gallery index. The query's own copy stays in the gallery if it is there
    (as in AdvOrder's evaluation).

    Parameters
    ----------
    model : callable
        ``[M, *S] -> [M, D]``.
    gallery : Gallery
        The items the service ranks.
    top_n : int or None, default 50
        Visible list length (``None``: the whole gallery).
    return_scores : bool, default False
    budget : int or None, default 1000
        Queries allowed per attacked query.
    batch_size : int, default 1024
        Images embedded per forward pass.

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> from rankattack.blackbox import ModelOracle
    >>> model = torch.nn.Flatten()
    >>> oracle = ModelOracle(model, Gallery(torch.eye(4)), top_n=2, budget=3)
    >>> oracle(torch.eye(4)[[2]].view(1, 1, 4))
    tensor([[2, 0]])
    >>> oracle.queries_used
    tensor([1])
    """

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        top_n: int | None = 50,
        return_scores: bool = False,
        budget: int | None = 1000,
        batch_size: int = 1024,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if not isinstance(gallery, Gallery):
            raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
        super().__init__(top_n, return_scores, budget)
        if self.top_n is not None and self.top_n > len(gallery):
            raise ValueError(
                f"top_n must be <= the gallery size {len(gallery)} (or None for the whole "
                f"list), got {top_n}"
            )
        self.model = model
        self.gallery = gallery
        self.batch_size = check_int(batch_size, "batch_size", low=1)

    @property
    def gallery_size(self) -> int:
        return len(self.gallery)

    def __repr__(self) -> str:
        name = getattr(self.model, "__name__", type(self.model).__name__)
        return (
            f"ModelOracle(model={name}, gallery={self.gallery!r}, top_n={self.top_n}, "
            f"return_scores={self.return_scores}, budget={self.budget}, "
            f"batch_size={self.batch_size})"
        )

    def embed(self, images: Tensor) -> Tensor:
        """Prepared embeddings ``[M, D]`` of ``images`` (eval mode, no gradient)."""
        outs = []
        with eval_mode(self.model), torch.no_grad():
            for s in range(0, images.shape[0], self.batch_size):
                batch = images[s : s + self.batch_size]
                out = self.model(batch)
                check_embedding_output(out, batch.shape[0], "model", self.gallery.dim)
                outs.append(out)
        emb = outs[0] if len(outs) == 1 else torch.cat(outs)
        g = self.gallery
        return g.distance.prepare(emb.to(device=g.embeddings.device, dtype=g.embeddings.dtype))

    def _row_blocks(self, m: int) -> list[tuple[int, int]]:
        return row_chunks(len(self.gallery), m, self.gallery.chunk_budget)

    def _search(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        q = self.embed(images)
        n = self.visible
        ids, dists = [], []
        for s, e in self._row_blocks(q.shape[0]):
            d = self.gallery.distances_prepared(q[s:e])
            if n == d.shape[1]:
                val, idx = torch.sort(d, dim=1, stable=True)
            else:
                val, idx = torch.topk(d, n, dim=1, largest=False, sorted=True)
                # ties broken by gallery index: order the selection by (distance, index) ...
                order = idx.argsort(dim=1)
                val, idx = val.gather(1, order), idx.gather(1, order)
                val, o2 = torch.sort(val, dim=1, stable=True)
                idx = idx.gather(1, o2)
                # ... and where items tie with the last one selected, re-select exactly
                last = val[:, -1:]
                cut = (d == last).sum(1) > (val == last).sum(1)
                if bool(cut.any()):
                    rows = torch.nonzero(cut).flatten()
                    v2, i2 = torch.sort(d[rows], dim=1, stable=True)
                    val[rows], idx[rows] = v2[:, :n], i2[:, :n]
            ids.append(idx)
            dists.append(val)
        return torch.cat(ids), torch.cat(dists)

    def _locate(self, images: Tensor, items: Tensor) -> Tensor:
        q = self.embed(images)
        items = items.to(q.device)
        out = torch.empty(items.shape, dtype=torch.long, device=q.device)
        for s, e in self._row_blocks(q.shape[0]):
            d = self.gallery.distances_prepared(q[s:e])
            out[s:e] = self._positions(d, items[s:e])
        return out.masked_fill_(out >= self.visible, -1)

    def _positions(self, d: Tensor, it: Tensor) -> Tensor:
        """Exact 0-based positions ``[m, k]`` of ``it`` in rows of distances ``d`` ``[m, N]``.

        Position = items strictly closer + equally close items of lower index, no sort.
        One pass per item: ``s = sign(t - d)`` gives #closer ``= (sum s + sum |s|) / 2``
        and #ties ``= N - sum |s|`` (the item itself is one); rows with other ties
        (duplicates in the gallery) are redone with the index rule.
        """
        size = d.shape[1]
        acc = torch.float32 if size < 2**24 else torch.float64
        out = torch.empty(it.shape, dtype=torch.long, device=d.device)
        dc = d.gather(1, it)
        for j in range(it.shape[1]):
            sign = torch.sub(dc[:, j : j + 1], d).sign_()
            total = sign.sum(1, dtype=acc)
            mass = sign.abs_().sum(1, dtype=acc)
            out[:, j] = ((total + mass) / 2).round().long()
            tied = (size - mass.round().long()) > 1
            if bool(tied.any()):
                rows = torch.nonzero(tied).flatten()
                index = torch.arange(size, device=d.device)
                same = (d[rows] == dc[rows, j : j + 1]) & (index < it[rows, j : j + 1])
                out[rows, j] += same.sum(1)
        return out

    def _order_of(self, images: Tensor, items: Tensor) -> Tensor:
        # the order among the items needs only their own distances; visibility needs the
        # distance at the list's cut (exact positions only where an item ties with it), so
        # with the whole list visible no pass over the gallery is needed at all
        q = self.embed(images)
        items = items.to(q.device)
        n = self.visible
        if n == len(self.gallery):
            dc = self.gallery.distance.paired(q.unsqueeze(1), self.gallery.prepared[items])
            return _order_among(dc, items)
        out = torch.empty(items.shape, dtype=torch.long, device=q.device)
        for s, e in self._row_blocks(q.shape[0]):
            d = self.gallery.distances_prepared(q[s:e])
            it = items[s:e]
            dc = d.gather(1, it)
            pos = _order_among(dc, it)  # items above, as if all were visible
            cut = torch.topk(d, n, dim=1, largest=False, sorted=True).values[:, -1:]
            vis = dc < cut
            edge = dc == cut
            if bool(edge.any()):
                rows = torch.nonzero(edge.any(1)).flatten()
                vis[rows] = self._positions(d[rows], it[rows]) < n
            out[s:e] = rank_among(torch.where(vis, pos, torch.full_like(pos, -1)))
        return out


def _order_among(dc: Tensor, items: Tensor) -> Tensor:
    """0-based places ``[M, k]`` of the items among themselves, by (distance ``dc``, index)."""
    before = (dc.unsqueeze(1) < dc.unsqueeze(2)) | (
        (dc.unsqueeze(1) == dc.unsqueeze(2)) & (items.unsqueeze(1) < items.unsqueeze(2))
    )
    return before.sum(2)
