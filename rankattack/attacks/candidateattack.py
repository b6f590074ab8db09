"""Candidate Attack: raise (CA+) or lower (CA-) a candidate's rank by perturbing it."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from rankattack._validation import check_choice
from rankattack.attacks.base import AttackResult, RankingAttack
from rankattack.attacks.targets import TargetResolver, check_gallery
from rankattack.gallery import Gallery
from rankattack.objectives import DIRECTIONS, CandidateObjective

__all__ = ["CandidateAttack"]


class CandidateAttack(RankingAttack):
    """Candidate Attack (Zhou et al., ECCV 2020, Sec. 3.1, Eq. 1-7).

    Perturbs each candidate c within an L-inf ball so that its rank with respect to a
    set of w queries is raised (CA+, Eq. 4) or lowered (CA-, Eq. 7), solved by PGD
    (Eq. 6) on the hinge objective [CandidateObjective][rankattack.objectives.CandidateObjective].

    Parameters
    ----------
    model : callable
        Maps inputs ``[N, *S]`` in ``[0, 1]`` to embeddings ``[N, D]``.
    gallery : Gallery
        The candidate set X the ranks are taken in.
    direction : {"raise", "lower"}, default "raise"
        CA+ or CA-. Every attack defaults to the variant the paper defines first for it
        (here CA+, Eq. 4); see [rankattack.attacks.base][].
    eps : float, default 8/255
        L-inf radius, in input units (inputs are in ``[0, 1]``: ``eps >= 1`` constrains
        nothing and draws a warning).
    alpha : float, optional
        Step size; default ``min(max(eps/10, 1/255), 0.01)``.
    steps : int, optional
        PGD iterations; default ``int(min(max(10, 2 eps/alpha), 30))``.
    random_start : bool, default False
        Start from a random point of the ball (the paper starts at the clean input).

    Shape
    -----
    - candidates: ``[N, *S]`` in ``[0, 1]``
    - queries: ``[N, w, *S]`` in ``[0, 1]``, or query_embeddings ``[N, w, D]``: each
      candidate's w queries (not class labels: a ranking attack is told which queries
      the candidate should rank high or low for)
    - output: ``[N, *S]``

    Examples
    --------
    >>> import torch
    >>> from rankattack import CandidateAttack, Gallery
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8))
    >>> gallery = Gallery.from_inputs(model, torch.rand(50, 1, 4, 4))
    >>> atk = CandidateAttack(model, gallery, direction="raise", eps=0.1)
    >>> result = atk.run(torch.rand(3, 1, 4, 4), torch.rand(3, 2, 1, 4, 4))
    >>> bool((result.rank_after <= result.rank_before).all())
    True
    """

    _param_names = ("gallery", "direction", "eps", "alpha", "steps", "random_start")

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        gallery: Gallery,
        direction: str = "raise",
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int | None = None,
        random_start: bool = False,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
        self.gallery = check_gallery(gallery)
        self.direction = check_choice(direction, "direction", DIRECTIONS)

    def objective(
        self,
        candidates: Tensor,
        queries: Tensor | None = None,
        query_embeddings: Tensor | None = None,
    ) -> CandidateObjective:
        """Validate the arguments and build the CA objective for them."""
        self.check_inputs(candidates, "candidates")
        targets = TargetResolver(self, self.gallery, candidates, "candidates", "candidate")
        query_embeddings = targets.queries(queries, query_embeddings)
        return CandidateObjective(self.gallery, query_embeddings, self.direction)

    def __call__(
        self,
        candidates: Tensor,
        queries: Tensor | None = None,
        *,
        query_embeddings: Tensor | None = None,
    ) -> Tensor:
        """Return adversarial candidates ``[N, *S]``."""
        objective = self.objective(candidates, queries, query_embeddings)
        return self.pgd(self.model, candidates, objective)

    def run(
        self,
        candidates: Tensor,
        queries: Tensor | None = None,
        *,
        query_embeddings: Tensor | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> AttackResult:
        """Attack and report the mean normalized rank ``R_CA(c)`` before and after.

        ``batch_size`` splits a large batch into chunks of that many candidates (default:
        all at once), with a progress bar if ``progress``.
        """
        return self._run_batched(
            self._run, "candidates", batch_size, progress, candidates=candidates,
            queries=queries, query_embeddings=query_embeddings,
        )  # fmt: skip

    def _run(self, candidates: Tensor, **targets: Tensor | None) -> AttackResult:
        objective = self.objective(candidates, **targets)
        before = objective.ranks(self.embed(candidates, "candidates", self.gallery.dim))
        adv = self.pgd(self.model, candidates, objective)
        after = objective.ranks(self.embed(adv, "candidates", self.gallery.dim))
        return AttackResult(adversarial=adv, rank_before=before, rank_after=after)
