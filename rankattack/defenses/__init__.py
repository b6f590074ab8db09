"""Adversarial training of ranking models: the embedding-shift defense and alternatives.

One module per defense:

* :mod:`~rankattack.defenses.embeddingshift`, **embedding-shift** (the paper's defense,
  Sec. 3.3, Eq. 13): every image of a training triplet ``(q, c_p, c_n)`` is replaced by
  its maximum-shift adversary ``x + argmax_{r in Gamma} d(f(x + r), f(x))``
  (:class:`~rankattack.MaxShiftAttack`, computed with the model in eval mode and the
  clean embedding held fixed), then the usual ranking loss is applied to the adversarial
  triplet. The paper reports that its training loss converges.
* :mod:`~rankattack.defenses.madry`, **madry** (Appendix H.1, Eq. 19; *less stable*):
  the anchor is replaced by the adversary that maximizes the triplet loss against the
  clean ``c_p, c_n``. The paper reports that this loss always diverges.
* :mod:`~rankattack.defenses.shiftsuppress`, **shift-suppress** (Appendix H.3, Eq. 22;
  *less stable*): the clean ranking loss plus the maximum embedding shift of the three
  images. The paper reports it helps cosine models but may numerically explode with
  Euclidean distance.
* :mod:`~rankattack.defenses.vanilla`: no defense, the clean ranking loss.

Each defense is a *loss* function of a batch and its triplets (what the training loop
calls) and a *step* function for users with their own loop (explicit triplets in, one
optimizer step, the detached loss out); :mod:`~rankattack.defenses.base` holds what
they share.
"""

from __future__ import annotations

from rankattack.defenses.base import DEFENSES, Triplets
from rankattack.defenses.embeddingshift import embedding_shift_loss, embedding_shift_step
from rankattack.defenses.madry import TripletAscentObjective, madry_loss, madry_step
from rankattack.defenses.shiftsuppress import shift_suppress_loss, shift_suppress_step
from rankattack.defenses.vanilla import vanilla_loss, vanilla_step

__all__ = [
    "DEFENSES",
    "TripletAscentObjective",
    "Triplets",
    "embedding_shift_loss",
    "embedding_shift_step",
    "madry_loss",
    "madry_step",
    "shift_suppress_loss",
    "shift_suppress_step",
    "vanilla_loss",
    "vanilla_step",
]
