"""Order Attack objective: bring k chosen items back in a wanted order (Wang et al., ICCV 2021).

"Practical Relative Order Attack in Deep Ranking" (AdvOrder) perturbs a query so that
its clean top-k items come back in a chosen permutation, without leaving the top of the
list. The white-box loss is a pairwise hinge on the wanted order (``L_ReO``) plus a
term keeping the items near the top (``L_SP``, a QA+ term over the gallery); its
black-box criterion is the short-range ranking correlation
([order_agreement][rankattack.objectives.order.order_agreement]).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack._validation import check_real, check_tensor
from rankattack.gallery import Gallery
from rankattack.objectives.base import RankingObjective

__all__ = ["OrderObjective", "order_agreement"]


def order_agreement(positions: Tensor) -> Tensor:
    """Short-range ranking correlation tau_S from the positions of items listed in wanted order.

    ``positions[b, i]`` is where the i-th wanted item appears in the returned list of row
    b (0 = top), or a negative value when it is not visible. Over the ``k(k-1)/2`` pairs
    ``i < j`` a pair scores +1 when both items are visible and ``positions[b, i] <
    positions[b, j]``, and -1 otherwise (wrong order, or either item outside the visible
    list); tau_S is the mean score, in ``[-1, 1]`` (AdvOrder, Algorithm 1). With every
    item visible it is Kendall's tau between the wanted and the returned order.

    Parameters
    ----------
    positions : Tensor
        ``[B, k]`` integer (or float) positions, ``k >= 2``; negative = not visible.

    Returns
    -------
    Tensor
        ``[B]`` float32 tau_S.
    """
    check_tensor(positions, "positions", ndim=2)
    k = positions.shape[1]
    if k < 2:
        raise ValueError(f"positions must hold k >= 2 items per row (pairs), got k = {k}")
    visible = positions >= 0
    before = positions.unsqueeze(2) < positions.unsqueeze(1)  # [B, i, j]: i above j
    both = visible.unsqueeze(2) & visible.unsqueeze(1)
    agree = (before & both).triu(diagonal=1).sum(dim=(1, 2))
    pairs = k * (k - 1) // 2
    return (2.0 * agree.to(torch.float32) - pairs) / pairs


class OrderObjective(RankingObjective):
    """White-box Order Attack loss ``L_ReO + xi * L_SP`` (AdvOrder, Sec. 3.2).

    With ``d_i`` the distance from the perturbed query to the i-th item of the wanted
    order, ``L_ReO = (1/k^2) sum_{i<j} [d_i - d_j]_+`` asks every item to be closer than
    the items after it (the reference implementation's normalization of the paper's
    plain sum), and ``L_SP = mean_{i, x} [d_i - d(q, x)]_+`` (QA+ over the gallery, Eq. 11
    of Zhou et al.) keeps the k items near the top of the list.

    Parameters
    ----------
    gallery : Gallery
        The candidate set X.
    item_embeddings : Tensor
        ``[N, k, D]`` raw embeddings of the k items of each query, in the wanted order.
    xi : float, default 10
        Weight of ``L_SP`` (AdvOrder's default).
    """

    def __init__(self, gallery: Gallery, item_embeddings: Tensor, xi: float = 10.0) -> None:
        self.gallery = gallery
        items = gallery.check_embeddings(item_embeddings, "item_embeddings", 3)
        self.n, self.k = items.shape[0], items.shape[1]
        if self.k < 2:
            raise ValueError(f"item_embeddings must hold k >= 2 items per query, got {self.k}")
        self.xi = check_real(xi, "xi", low=0.0)
        self.dim = gallery.dim
        self.device = gallery.embeddings.device
        self.items = gallery.distance.prepare(items)
        self._pairs = torch.ones(self.k, self.k, dtype=torch.bool, device=self.device).triu(1)

    def __call__(self, embeddings: Tensor) -> Tensor:
        q = self.gallery.distance.prepare(embeddings.to(self.items.dtype))
        d = self.gallery.distance.paired(q.unsqueeze(1), self.items)  # [N, k]
        diff = (d.unsqueeze(2) - d.unsqueeze(1)).clamp_min(0.0)  # [N, i, j]: d_i - d_j
        reo = (diff * self._pairs).sum(dim=(1, 2)) / (self.k * self.k)
        if self.xi == 0:
            return reo
        h = self.gallery.hinge(q, d, (1.0,) * self.k)
        return reo + self.xi * h.mean(1) / len(self.gallery)

    @torch.no_grad()
    def positions(self, embeddings: Tensor) -> Tensor:
        """``[N, k]`` 0-based positions of the k items in the full ranked list."""
        q = self.gallery.distance.prepare(embeddings.to(self.items.dtype))
        t = self.gallery.distance.paired(q.unsqueeze(1), self.items)
        return self.gallery.count_closer(q, t)

    @torch.no_grad()
    def tau(self, embeddings: Tensor) -> Tensor:
        """``[N]`` tau_S of the embeddings over the full list (every item visible)."""
        return order_agreement(self.positions(embeddings))

    @torch.no_grad()
    def ranks(self, embeddings: Tensor) -> Tensor:
        """Mean normalized rank ``[N]`` of the k items."""
        return self.positions(embeddings).to(torch.float32).mean(1) / len(self.gallery)

    def __repr__(self) -> str:
        return f"OrderObjective(n={self.n}, k={self.k}, xi={self.xi})"
