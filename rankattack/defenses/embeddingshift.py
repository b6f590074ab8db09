"""The embedding-shift defense, EST (the paper's defense, Sec. 3.3, Eq. 13).

Every image of the batch is replaced by its maximum-shift adversary
``x + argmax_{r in Gamma} d(f(x + r), f(x))`` ([MaxShiftAttack][rankattack.MaxShiftAttack], computed
with the model in eval mode and the clean embedding held fixed), then the ranking loss is
applied to the triplets of the adversarial embeddings. The paper reports that its training
loss converges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from rankattack._validation import check_real
from rankattack.attacks.maxshiftattack import MaxShiftAttack
from rankattack.defenses.base import (
    Defense,
    LossFn,
    Triplets,
    TripletSelector,
    _check_pgd,
    step_of,
)
from rankattack.distances import Distance

__all__ = ["EmbeddingShiftDefense", "embedding_shift_loss", "embedding_shift_step"]


class EmbeddingShiftDefense(Defense):
    """The embedding-shift defense, EST (Zhou et al., ECCV 2020, Sec. 3.3, Eq. 13).

    ``L_d-t = L_triplet(q + r_q, c_p + r_p, c_n + r_n)`` with ``r_x`` the maximum-shift
    adversary of ``x``: every image of the batch is attacked once
    ([MaxShiftAttack][rankattack.MaxShiftAttack]; the adversary of an image does not depend on the
    triplets it is in), the adversarial batch is embedded in the model's current mode, the
    miner picks the triplets on those embeddings and the ranking loss is applied to them.
    There is no clean term.

    Parameters
    ----------
    eps : float, default 77/255
        L-inf radius of the adversary (robrank's 28x28 setting).
    alpha : float, default 3/255
        PGD step size.
    steps : int, default 32
        PGD iterations (``>= 1``).
    metric, margin, ranking_loss, miner
        See [Defense][rankattack.defenses.base.Defense]; the default miner draws one random
        triplet per image ([RandomTripletMiner][rankattack.defenses.miners.RandomTripletMiner]).
    jitter : float, default 1e-3
        Half-width of the uniform start of the search (the shift's gradient is zero at r = 0).
    random_start : bool, default False
        Start from a uniform point of the whole eps-ball instead.
    generator : torch.Generator, optional
        Source of the starting noise; the global RNG if None.

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F1
    >>> model = C2F1(embedding_dim=8)
    >>> defense = EmbeddingShiftDefense(eps=0.1, alpha=0.05, steps=2)
    >>> loss = defense.loss(model, torch.rand(4, 1, 28, 28), torch.tensor([0, 0, 1, 1]))
    >>> loss.backward()
    """

    name = "est"

    def __init__(
        self,
        eps: float = 77 / 255,
        alpha: float | None = 3 / 255,
        steps: int | None = 32,
        metric: str | Distance = "cosine",
        margin: float | None = None,
        ranking_loss: Any = None,
        miner: Any = None,
        jitter: float = 1e-3,
        random_start: bool = False,
        generator: Any = None,
    ) -> None:
        super().__init__(metric, margin, ranking_loss, miner)
        self.eps, self.alpha, self.steps = _check_pgd(eps, alpha, steps)
        self.jitter = check_real(jitter, "jitter", low=0.0)
        self.random_start = random_start
        self.generator = generator
        self._bound: MaxShiftAttack | None = None
        self.attack(lambda x: x)  # validates random_start and generator now

    @classmethod
    def from_attack(cls, attack: MaxShiftAttack, ranking_loss: Any) -> EmbeddingShiftDefense:
        """The defense whose adversary is ``attack`` (whichever model the loss is given)."""
        if not isinstance(attack, MaxShiftAttack):
            raise TypeError(f"attack must be a MaxShiftAttack, got {type(attack).__name__}")
        defense = cls(
            eps=attack.eps, alpha=attack.alpha, steps=attack.steps, metric=attack.distance,
            ranking_loss=ranking_loss, jitter=attack.jitter,
            random_start=attack.pgd.random_start, generator=attack.generator,
        )  # fmt: skip
        defense._bound = attack
        return defense

    def attack(self, model: Callable[[Tensor], Tensor]) -> MaxShiftAttack:
        """The maximum-shift adversary bound to ``model``."""
        if self._bound is not None:
            return self._bound
        return MaxShiftAttack(
            model, eps=self.eps, alpha=self.alpha, steps=self.steps, metric=self.distance,
            jitter=self.jitter, random_start=self.random_start, generator=self.generator,
        )  # fmt: skip

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        adversarial = self.attack(model).perturb(inputs, check=False)[0]
        emb = model(adversarial)
        a, p, n = select(emb.detach())
        if a.shape[0] == 0:
            return self._no_triplets(inputs)
        return self.ranking_loss(emb[a], emb[p], emb[n])

    def _params(self) -> dict[str, Any]:
        return {
            "eps": self.eps, "alpha": self.alpha, "steps": self.steps, **super()._params(),
            "jitter": self.jitter, "random_start": self.random_start,
        }  # fmt: skip


def embedding_shift_loss(
    model: Callable[[Tensor], Tensor],
    loss_fn: LossFn,
    inputs: Tensor,
    triplets: Triplets,
    attack: MaxShiftAttack,
) -> Tensor:
    """The embedding-shift defense loss ``L_d-t`` (paper Eq. 13) of given triplets.

    Each image of the batch is replaced by its maximum-shift adversary under ``attack`` (one
    attack per image, whichever triplets it belongs to), then ``loss_fn`` is applied to the
    adversarial triplets.
    [EmbeddingShiftDefense][rankattack.defenses.embeddingshift.EmbeddingShiftDefense] with the
    attack's parameters.
    """
    return EmbeddingShiftDefense.from_attack(attack, loss_fn).triplet_loss(model, inputs, triplets)


embedding_shift_step = step_of(embedding_shift_loss)
"""One optimizer step of the embedding-shift defense (paper Eq. 13) on explicit triplets.

``embedding_shift_step(model, loss_fn, optimizer, anchors, positives, negatives, attack)``:
``anchors``, ``positives``, ``negatives`` are inputs ``[M, *S]`` in ``[0, 1]`` of the triplets
``(q, c_p, c_n)``, ``attack`` the maximum-shift adversary bound to ``model``, e.g.
``MaxShiftAttack(model, eps=0.3, metric="cosine")``. Returns the detached loss of the
adversarial triplets.

Examples
--------
>>> import torch
>>> from rankattack import MaxShiftAttack
>>> from rankattack.defenses import embedding_shift_step
>>> from rankattack.losses import TripletLoss
>>> from rankattack.models import C2F1
>>> model = C2F1(embedding_dim=8)
>>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
>>> atk = MaxShiftAttack(model, eps=0.3, alpha=0.1, steps=3)
>>> q, p, n = (torch.rand(4, 1, 28, 28) for _ in range(3))
>>> embedding_shift_step(model, TripletLoss(), opt, q, p, n, atk).shape
torch.Size([])
"""
