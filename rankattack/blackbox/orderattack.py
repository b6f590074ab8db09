"""Black-box Order Attack: reorder a query's top-k through a service that returns only ids."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_real, check_tensor, check_unit_range
from rankattack.attacks.whiteboxorderattack import OrderResult, random_target_order
from rankattack.blackbox.optimizers import make_optimizer
from rankattack.blackbox.oracle import RankingOracle, check_budget, locate_in_lists, rank_among
from rankattack.blackbox.search import SearchProblem
from rankattack.keyedrandom import KeyedRandom
from rankattack.objectives.order import order_agreement

__all__ = ["OrderAttack"]

logger = logging.getLogger(__name__)


def query_ids_of(query_ids: Tensor | None, b: int, device: torch.device) -> Tensor:
    """Validated ``[B]`` query ids (default ``0 .. B-1``)."""
    if query_ids is None:
        return torch.arange(b, device=device)
    check_tensor(query_ids, "query_ids", ndim=1, integer=True)
    if query_ids.shape[0] != b:
        raise ValueError(f"query_ids must hold one id per query ({b}), got {query_ids.shape[0]}")
    return query_ids.to(device=device, dtype=torch.long)


def check_oracle(oracle: Any) -> RankingOracle:
    if not isinstance(oracle, RankingOracle):
        raise TypeError(
            f"oracle must be a rankattack.blackbox.RankingOracle, got {type(oracle).__name__}"
        )
    return oracle


class OrderAttack:
    """Black-box Order Attack (Wang et al., "Practical Relative Order Attack in Deep Ranking").

    ICCV 2021 (AdvOrder), Sec. 3.3-4.

    Perturbs each query within an L-inf ball so that k chosen gallery items come back
    in a wanted order, seeing only the ranked ids the oracle returns. The criterion is
    the short-range ranking correlation tau_S
    ([short_range_correlation][rankattack.blackbox.short_range_correlation]), maximized by SPSA
    (default), NES or random sampling (Rand), with early stop once tau_S > ``stop`` and the best
    input found kept.

    Parameters
    ----------
    oracle : RankingOracle
        The service; reset at the start of every run.
    k : int, default 5
        Items reordered (the query's clean top-k by default); ``2 <= k <= oracle.visible``.
    eps : float, default 4/255
        L-inf radius.
    optimizer : {"spsa", "nes", "rand", "square", "pso", "beta"} or Optimizer, default "spsa"
    budget : int, default 1000
        Oracle queries per attacked query, its clean look-up included; at most the
        oracle's own budget.
    population : int, default 50
        Candidates per batched oracle call (ignored when ``optimizer`` is an instance).
    seed : int, default 0
        Seed of the target permutations and of the search noise, which are drawn per
        query from ``(seed, query id)`` ([KeyedRandom][rankattack.keyedrandom.KeyedRandom]):
        a query gets the same numbers in any batch.
    stop : float, default 0.99
        Stop a query's search once its tau_S is above this.

    Examples
    --------
    >>> import torch
    >>> from rankattack import Gallery
    >>> from rankattack.blackbox import ModelOracle, OrderAttack
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> x = torch.rand(60, 1, 4, 4)
    >>> oracle = ModelOracle(model, Gallery.from_inputs(model, x), top_n=10, budget=200)
    >>> atk = OrderAttack(oracle, k=3, eps=0.1, budget=200, population=20)
    >>> result = atk.run(x[:4])
    >>> bool((result.queries_used <= 200).all())
    True
    """

    def __init__(
        self,
        oracle: RankingOracle,
        k: int = 5,
        eps: float = 4 / 255,
        optimizer: Any = "spsa",
        budget: int = 1000,
        population: int = 50,
        seed: int = 0,
        stop: float = 0.99,
    ) -> None:
        self.oracle = check_oracle(oracle)
        self.k = check_int(k, "k", low=2)
        if self.k > oracle.visible:
            raise ValueError(
                f"k must be <= the oracle's visible list length {oracle.visible} "
                f"(top_n={oracle.top_n}), got {k}"
            )
        self.eps = check_real(eps, "eps", low=0.0)
        population = check_int(population, "population", low=1)
        self.optimizer = make_optimizer(
            optimizer, population, ("spsa", "nes", "rand", "square", "pso", "beta")
        )
        budget_ = check_budget(budget)
        if budget_ is None:
            raise TypeError("budget must be an int, got None")
        self.budget = budget_
        need = 1 + self.optimizer.population + self.optimizer.reserve
        if self.budget < need:
            raise ValueError(
                f"budget must be >= {need} (the clean look-up, one population of "
                f"{self.optimizer.population} and {self.optimizer.reserve} final evaluation), "
                f"got {budget}"
            )
        if oracle.budget is not None and self.budget > oracle.budget:
            raise ValueError(f"budget must be <= the oracle's budget {oracle.budget}, got {budget}")
        self.seed = check_int(seed, "seed")
        self.stop = check_real(stop, "stop")

    def __repr__(self) -> str:
        return (
            f"OrderAttack(oracle={self.oracle!r}, k={self.k}, eps={self.eps}, "
            f"optimizer={self.optimizer!r}, budget={self.budget}, seed={self.seed}, "
            f"stop={self.stop})"
        )

    def __call__(
        self, queries: Tensor, target_order: Tensor | None = None, query_ids: Tensor | None = None
    ) -> Tensor:
        """Adversarial queries ``[B, *S]``; see
        [run][rankattack.blackbox.orderattack.OrderAttack.run]."""
        return self.run(queries, target_order, query_ids).adversarial

    def run(
        self, queries: Tensor, target_order: Tensor | None = None, query_ids: Tensor | None = None
    ) -> OrderResult:
        """Attack each query; report tau_S before and after and the queries used.

        Parameters
        ----------
        queries : Tensor
            ``[B, *S]`` in ``[0, 1]``; never modified.
        target_order : Tensor, optional
            ``[B, k]`` distinct gallery ids in the wanted order; default the clean top-k
            in a random permutation drawn from ``(seed, query id)``.
        query_ids : Tensor, optional
            ``[B]`` stable ids of the queries (default ``0 .. B-1``): they key all the
            randomness, so pass dataset indices when splitting a set into batches.

        Returns
        -------
        OrderResult
            ``tau`` is the best tau_S found (at least the clean one: the clean query is
            returned when nothing better was found); ``queries_used`` counts the clean
            look-up.
        """
        check_tensor(queries, "queries", min_ndim=2, floating=True)
        if queries.shape[0] < 1:
            raise ValueError(f"queries must hold at least one query, got {tuple(queries.shape)}")
        check_unit_range(queries, "queries")
        b = queries.shape[0]
        ids = query_ids_of(query_ids, b, queries.device)
        origin = queries.detach().clone()
        oracle = self.oracle
        oracle.reset()
        with torch.no_grad():
            answer = oracle(origin)
            clean = answer[0] if isinstance(answer, tuple) else answer
            clean = clean.to(queries.device)
            if clean.shape[1] < self.k:
                raise ValueError(
                    f"k must be <= the length of the returned lists ({clean.shape[1]}), "
                    f"got {self.k}"
                )
            if target_order is None:
                target = random_target_order(clean[:, : self.k], self.seed, ids)
            else:
                target = self._check_target(target_order, b, queries.device)
            order0 = rank_among(locate_in_lists(clean, target))
            tau0 = order_agreement(order0)

            def score(images: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
                order = oracle.order_of(images, target[rows], owner=rows).to(images.device)
                return order_agreement(order), order

            problem = SearchProblem(
                score, origin, self.eps, self.budget - 1, tau0, order0, ids,
                KeyedRandom(self.seed), stop=self.stop,
            )  # fmt: skip
            self.optimizer.search(problem, self.eps)
        used = oracle.queries_used[:b].to(queries.device)
        logger.info("order attack: mean tau_S %.3f -> %.3f", float(tau0.mean()),
                    float(problem.best_score.mean()))  # fmt: skip
        return OrderResult(
            adversarial=problem.best_x,
            target_order=target,
            tau_before=tau0,
            tau=problem.best_score,
            order=problem.best_aux,
            queries_used=used,
        )

    def _check_target(self, target_order: Any, b: int, device: torch.device) -> Tensor:
        check_tensor(target_order, "target_order", ndim=2, integer=True)
        if target_order.shape != (b, self.k):
            raise ValueError(
                f"target_order must be [B, k] = [{b}, {self.k}] gallery ids, got shape "
                f"{tuple(target_order.shape)}"
            )
        n = self.oracle.gallery_size
        if int(target_order.min()) < 0 or int(target_order.max()) >= n:
            raise ValueError(f"target_order must hold gallery ids in [0, {n - 1}]")
        srt = target_order.sort(dim=1).values
        if bool((srt[:, 1:] == srt[:, :-1]).any()):
            raise ValueError("target_order must hold distinct ids in each row")
        return target_order.to(device=device, dtype=torch.long)
