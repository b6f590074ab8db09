"""White-box Order Attack: pairwise hinges on a wanted order, run by the L-inf PGD engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real, check_tensor
from rankattack.attacks.base import RankingAttack
from rankattack.attacks.targets import check_gallery
from rankattack.gallery import Gallery
from rankattack.keyedrandom import KeyedRandom
from rankattack.objectives import OrderObjective

__all__ = ["ORDER_STREAM", "OrderResult", "WhiteBoxOrderAttack", "random_target_order"]

#: The [KeyedRandom][rankattack.keyedrandom.KeyedRandom] stream of the default target permutations.
ORDER_STREAM = 1


def random_target_order(top_items: Tensor, seed: int, query_ids: Tensor) -> Tensor:
    """The default wanted order: each row of ``top_items`` ``[B, k]`` in a random permutation.

    Row b is permuted by a permutation drawn from ``(seed, query_ids[b])`` only (see
    [KeyedRandom][rankattack.keyedrandom.KeyedRandom]), so a query gets the same target in any
    batch; the identity permutation is possible, as in AdvOrder.
    """
    perm = KeyedRandom(seed).permutation(
        query_ids.to(top_items.device), top_items.shape[1], ORDER_STREAM
    )
    return top_items.gather(1, perm)


@dataclass(frozen=True)
class OrderResult:
    """Outcome of an Order Attack.

    Attributes
    ----------
    adversarial : Tensor
        ``[B, *S]`` perturbed queries.
    target_order : Tensor
        ``[B, k]`` gallery ids in the wanted order.
    tau_before, tau : Tensor
        ``[B]`` short-range ranking correlation tau_S of the clean and of the adversarial
        queries (AdvOrder's figure is the mean of ``tau``).
    order : Tensor
        ``[B, k]`` each wanted item's rank among the visible wanted items in the
        adversarial query's list (0 = highest; -1: outside the visible list): what
        tau_S is computed from.
    queries_used : Tensor
        ``[B]`` oracle queries spent per attacked query, its clean look-up included
        (0 for the white-box attack).
    positions : Tensor or None
        ``[B, k]`` 0-based positions of the wanted items in the full list (white-box
        attack; a black-box attack sees only what the oracle returns).
    """

    adversarial: Tensor
    target_order: Tensor
    tau_before: Tensor
    tau: Tensor
    order: Tensor
    queries_used: Tensor
    positions: Tensor | None = None


class WhiteBoxOrderAttack(RankingAttack):
    """White-box Order Attack (Wang et al., "Practical Relative Order Attack in Deep Ranking").

    ICCV 2021 (AdvOrder), Sec. 3.2.

    Perturbs each query within an L-inf ball so that its k chosen items come back in the
    wanted order while staying near the top: PGD on ``L_ReO + xi * L_SP``
    ([OrderObjective][rankattack.objectives.OrderObjective]).

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X (the query's own copy may be in it, as in AdvOrder).
    k : int, default 5
        Items reordered: the query's clean top-k unless a target order is given.
    eps : float, default 4/255
    alpha : float, default 1/255
        PGD step (AdvOrder's).
    steps : int, default 24
        PGD iterations (AdvOrder's).
    xi : float, default 10
        Weight of the term keeping the items near the top.
    seed : int, default 0
        Seed of the default target permutations (per query id).

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> from rankattack.attacks import WhiteBoxOrderAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(60, 1, 4, 4)
    >>> atk = WhiteBoxOrderAttack(model, Gallery.from_inputs(model, x), k=3, eps=0.1)
    >>> result = atk.run(x[:4])
    >>> result.tau.shape
    torch.Size([4])
    """

    _param_names = ("gallery", "k", "eps", "alpha", "steps", "xi", "seed")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        k: int = 5,
        eps: float = 4 / 255,
        alpha: float | None = 1 / 255,
        steps: int | None = 24,
        xi: float = 10.0,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps)
        self.gallery = check_gallery(gallery)
        self.k = check_int(k, "k", low=2)
        if self.k > len(gallery):
            raise ValueError(f"k must be <= the gallery size {len(gallery)}, got {k}")
        self.xi = check_real(xi, "xi", low=0.0)
        self.seed = check_int(seed, "seed")

    def objective(
        self, queries: Tensor, target_order: Tensor | None = None, query_ids: Tensor | None = None
    ) -> tuple[OrderObjective, Tensor, Tensor]:
        """Validate; return the objective, the target order ``[B, k]`` and the clean embeddings."""
        self.check_inputs(queries, "queries")
        b = queries.shape[0]
        q_emb = self.embed(queries, "queries", self.gallery.dim)
        if target_order is None:
            ids = _query_ids(query_ids, b, q_emb.device)
            _, top = self.gallery.topk(q_emb, self.k)
            target_order = random_target_order(top, self.seed, ids)
        else:
            check_tensor(target_order, "target_order", ndim=2, integer=True)
            if target_order.shape != (b, self.k):
                raise ValueError(
                    f"target_order must be [B, k] = [{b}, {self.k}] gallery ids, got shape "
                    f"{tuple(target_order.shape)}"
                )
            target_order = self.gallery.check_indices(target_order, "target_order")
        items = self.gallery.embeddings[target_order]
        return OrderObjective(self.gallery, items, self.xi), target_order, q_emb

    def __call__(
        self, queries: Tensor, target_order: Tensor | None = None, query_ids: Tensor | None = None
    ) -> Tensor:
        """Adversarial queries ``[B, *S]``; see
        [run][rankattack.attacks.whiteboxorderattack.WhiteBoxOrderAttack.run]."""
        objective, _, _ = self.objective(queries, target_order, query_ids)
        return self.pgd(self.model, queries, objective)

    def run(
        self, queries: Tensor, target_order: Tensor | None = None, query_ids: Tensor | None = None
    ) -> OrderResult:
        """Attack and report tau_S over the full list before and after.

        Parameters
        ----------
        queries : Tensor
            ``[B, *S]`` in ``[0, 1]``.
        target_order : Tensor, optional
            ``[B, k]`` gallery ids in the wanted order; default the clean top-k in a
            random permutation drawn from ``(seed, query id)``.
        query_ids : Tensor, optional
            ``[B]`` stable ids of the queries for the permutations (default ``0..B-1``);
            pass dataset indices when splitting a set into batches.
        """
        objective, target, q_emb = self.objective(queries, target_order, query_ids)
        adv = self.pgd(self.model, queries, objective)
        adv_emb = self.embed(adv, "queries", self.gallery.dim)
        pos = objective.positions(adv_emb)
        return OrderResult(
            adversarial=adv,
            target_order=target,
            tau_before=objective.tau(q_emb),
            tau=objective.tau(adv_emb),
            order=pos.argsort(1).argsort(1),
            positions=pos,
            queries_used=torch.zeros(queries.shape[0], dtype=torch.long, device=queries.device),
        )


def _query_ids(query_ids: Tensor | None, b: int, device: torch.device) -> Tensor:
    if query_ids is None:
        return torch.arange(b, device=device)
    check_tensor(query_ids, "query_ids", ndim=1, integer=True)
    if query_ids.shape[0] != b:
        raise ValueError(f"query_ids must hold one id per query ({b}), got {query_ids.shape[0]}")
    return query_ids.to(device)
