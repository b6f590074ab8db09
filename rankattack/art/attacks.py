"""ART ``EvasionAttack`` adapters of the candidate, query and maximum-shift attacks."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from rankattack._validation import check_int, check_real
from rankattack.art._convert import ArrayLike, check_art_param
from rankattack.art.base import RankingEvasionAttack
from rankattack.art.estimator import RankingEstimator
from rankattack.art.losses import is_integer
from rankattack.attacks.candidateattack import CandidateAttack
from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.attacks.queryattack import QueryAttack

__all__ = ["CandidateAttackART", "MaxShiftAttackART", "QueryAttackART"]


class CandidateAttackART(RankingEvasionAttack):
    """[rankattack.CandidateAttack][] (CA+/CA-, Sec. 3.1, Eq. 4-7) as an ART evasion attack.

    Perturbs each candidate so that its rank among the estimator's gallery, for its w
    queries, rises (``"raise"``, CA+) or falls (``"lower"``, CA-).

    Parameters
    ----------
    estimator : RankingEstimator
        Its gallery is the candidate set X.
    direction : {"raise", "lower"}, default "raise"
    eps, eps_step, max_iter, random_start, batch_size, verbose
        See [RankingEvasionAttack][rankattack.art.base.RankingEvasionAttack].

    Examples
    --------
    >>> import numpy as np, torch
    >>> from rankattack.art import CandidateAttackART, RankingEstimator
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> est = RankingEstimator(net, input_shape=(1, 4, 4))
    >>> _ = est.build_gallery(np.random.rand(50, 1, 4, 4).astype(np.float32))
    >>> cand = np.random.rand(3, 1, 4, 4).astype(np.float32)
    >>> queries = np.random.rand(3, 2, 1, 4, 4).astype(np.float32)
    >>> adv = CandidateAttackART(est, eps=0.1).generate(cand, queries=queries)
    >>> y = est.predict_sets(queries)
    >>> bool(est.ranks(adv, y).mean() < est.ranks(cand, y).mean())
    True
    """

    attack_params: ClassVar[list[str]] = [*RankingEvasionAttack.attack_params, "direction"]
    generate_kwargs: ClassVar[tuple[str, ...]] = ("queries",)

    def __init__(
        self,
        estimator: RankingEstimator,
        direction: str = "raise",
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int | None = None,
        random_start: bool = False,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator, eps, eps_step, max_iter, random_start, batch_size, verbose)
        self.direction = direction
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        self._check_direction(self.direction)

    def generate(self, x: ArrayLike, y: ArrayLike | None = None, **kwargs: Any) -> ArrayLike:
        """Adversarial candidates ``[N, *S]`` (same kind as ``x``).

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            Candidates ``[N, *S]`` in ``[0, 1]``.
        y : numpy.ndarray or Tensor, optional
            Query embeddings ``[N, w, D]`` (the estimator's ``"candidate"`` encoding).
        **kwargs
            ``queries`` (see *Other Parameters*); any other keyword raises ``ValueError``.

        Other Parameters
        ----------------
        queries : numpy.ndarray or Tensor, optional
            Query images ``[N, w, *S]`` instead of ``y``.
        """
        self._check_kwargs(kwargs)
        queries = kwargs.get("queries")
        if (y is None) == (queries is None):
            raise ValueError("give exactly one of y (query embeddings) or queries= (query images)")
        est = self.estimator
        gallery = est._need_gallery()
        attack = self._bind(
            CandidateAttack(est.embedding_model, gallery, direction=self.direction, eps=self.eps)
        )
        xt = self._inputs(x)
        n = xt.shape[0]
        y_t = self._per_sample(y, "y", n)
        if y_t is not None and y_t.dim() == 2:
            y_t = y_t.unsqueeze(1)
        q_t = self._per_sample(queries, "queries", n)

        def run(xb: Tensor, yb: Tensor | None, qb: Tensor | None) -> Tensor:
            return attack(xb, qb, query_embeddings=yb)

        return self._run(x, xt, run, yb=y_t, qb=q_t)


class QueryAttackART(RankingEvasionAttack):
    """[rankattack.QueryAttack][] (SP-QA+/QA-, Sec. 3.2, Eq. 8-12) as an ART evasion attack.

    Perturbs each query so that the ranks of its m chosen candidates rise (``"raise"``,
    QA+) or fall (``"lower"``, QA-), while the Semantics-Preserving term (Eq. 12, weight
    ``xi``) keeps the query's ``sp_size`` nearest other results in place.

    Parameters
    ----------
    estimator : RankingEstimator
        Its gallery is the candidate set X.
    direction : {"raise", "lower"}, default "lower"
    xi : float, optional
        SP weight; default 1 for "raise", 100 for "lower" (the paper's); 0: naive QA.
    sp_size : int, default 5
        G, the size of ``C_SP`` (0 disables SP).
    eps, eps_step, max_iter, random_start, batch_size, verbose
        See [RankingEvasionAttack][rankattack.art.base.RankingEvasionAttack].
    """

    attack_params: ClassVar[list[str]] = [
        *RankingEvasionAttack.attack_params,
        "direction",
        "xi",
        "sp_size",
    ]
    generate_kwargs: ClassVar[tuple[str, ...]] = ("candidates", "query_indices")

    def __init__(
        self,
        estimator: RankingEstimator,
        direction: str = "lower",
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int | None = None,
        xi: float | None = None,
        sp_size: int = 5,
        random_start: bool = False,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator, eps, eps_step, max_iter, random_start, batch_size, verbose)
        self.direction = direction
        self.xi = xi
        self.sp_size = sp_size
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        self._check_direction(self.direction)
        if self.xi is not None:
            check_art_param(check_real, self.xi, "xi", low=0.0)
        check_art_param(check_int, self.sp_size, "sp_size", low=0)
        gallery = self.estimator.gallery
        if gallery is not None and self.sp_size >= len(gallery):
            raise ValueError(
                f"sp_size must be smaller than the gallery ({len(gallery)} items), got "
                f"{self.sp_size}"
            )

    def generate(self, x: ArrayLike, y: ArrayLike | None = None, **kwargs: Any) -> ArrayLike:
        """Adversarial queries ``[N, *S]`` (same kind as ``x``).

        Parameters
        ----------
        x : numpy.ndarray or Tensor
            Queries ``[N, *S]`` in ``[0, 1]``.
        y : numpy.ndarray or Tensor, optional
            The chosen candidates: gallery indices ``[N, m]`` (int) or embeddings
            ``[N, m, D]`` (float). ``C_SP`` is chosen by the attack, not given.
        **kwargs
            ``candidates``, ``query_indices`` (see *Other Parameters*); any other keyword
            raises ``ValueError``.

        Other Parameters
        ----------------
        candidates : numpy.ndarray or Tensor, optional
            Candidate images ``[N, m, *S]`` instead of ``y``.
        query_indices : numpy.ndarray or Tensor, optional
            ``[N]`` gallery positions of the queries, kept out of ``C_SP``.
        """
        self._check_kwargs(kwargs)
        candidates = kwargs.get("candidates")
        if (y is None) == (candidates is None):
            raise ValueError(
                "give exactly one of y (candidate indices or embeddings) or candidates= "
                "(candidate images)"
            )
        est = self.estimator
        gallery = est._need_gallery()
        attack = self._bind(
            QueryAttack(
                est.embedding_model,
                gallery,
                direction=self.direction,
                eps=self.eps,
                xi=self.xi,
                sp_size=self.sp_size,
            )
        )
        xt = self._inputs(x)
        n = xt.shape[0]
        integer = y is not None and is_integer(y)
        y_t = self._per_sample(y, "y", n, floating=not integer)
        if y_t is not None:
            y_t = y_t.long() if integer else y_t
            if y_t.dim() == (1 if integer else 2):
                y_t = y_t.unsqueeze(1)
        c_t = self._per_sample(candidates, "candidates", n)
        qi = self._per_sample(kwargs.get("query_indices"), "query_indices", n, floating=False)

        def run(xb: Tensor, yb: Tensor | None, cb: Tensor | None, qb: Tensor | None) -> Tensor:
            if yb is None or integer:
                return attack(xb, yb, candidates=cb, query_indices=qb)
            return attack(xb, candidate_embeddings=yb, query_indices=qb)

        return self._run(x, xt, run, yb=y_t, cb=c_t, qb=qi)


class MaxShiftAttackART(RankingEvasionAttack):
    """[rankattack.MaxShiftAttack][] (Sec. 3.3, Eq. 13) as an ART evasion attack.

    Pushes each input's embedding as far as possible from its clean embedding, in the
    estimator's metric: the adversary of the embedding-shift defense. Untargeted:
    ``generate`` takes no ``y``.

    Parameters
    ----------
    estimator : RankingEstimator
        Its ``metric`` is the distance maximized; no gallery is needed.
    jitter : float, default 1e-3
        Half-width of the uniform noise the search starts from (the shift's gradient is
        zero at the clean input).
    eps, eps_step, max_iter, random_start, batch_size, verbose
        See [RankingEvasionAttack][rankattack.art.base.RankingEvasionAttack].
    """

    attack_params: ClassVar[list[str]] = [*RankingEvasionAttack.attack_params, "jitter"]

    def __init__(
        self,
        estimator: RankingEstimator,
        eps: float = 8 / 255,
        eps_step: float | None = None,
        max_iter: int | None = None,
        jitter: float = 1e-3,
        random_start: bool = False,
        batch_size: int = 128,
        verbose: bool = False,
    ) -> None:
        super().__init__(estimator, eps, eps_step, max_iter, random_start, batch_size, verbose)
        self.jitter = jitter
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        check_art_param(check_real, self.jitter, "jitter", low=0.0)

    def generate(self, x: ArrayLike, y: ArrayLike | None = None, **kwargs: Any) -> ArrayLike:
        """Inputs ``[N, *S]`` whose embeddings moved farthest (same kind as ``x``)."""
        self._check_kwargs(kwargs)
        if y is not None:
            raise ValueError("MaxShiftAttackART is untargeted: y must be None")
        est = self.estimator
        attack = self._bind(
            MaxShiftAttack(est.embedding_model, eps=self.eps, metric=est.metric, jitter=self.jitter)
        )

        return self._run(x, self._inputs(x), attack)
