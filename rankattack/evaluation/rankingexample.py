"""One attack shown on a ranking list: the data of the paper's Fig. 1.

Zhou et al., "Adversarial Ranking Attack and Defense" (ECCV 2020), Fig. 1 and the
appendix figures: a query's top-k list before and after one CA or QA with w = m = 1,
on the first (query, candidate) pair the protocol's cell draws. Positions in the list are
raw counts (0 = top) out of ``gallery_size`` items.
[rankattack.plots.plot_ranking_example][] draws it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real
from rankattack.attacks import CandidateAttack, QueryAttack
from rankattack.evaluation.cells import _check_inputs_match
from rankattack.evaluation.sampling import ATTACKS, cell_seed, sample_cell
from rankattack.gallery import Gallery

__all__ = ["RankingExample", "ranking_example"]


@dataclass(frozen=True)
class RankingExample:
    """One attack shown on a ranking list (paper Fig. 1 and the appendix figures).

    Attributes
    ----------
    attack : str
    eps : float
    clean, adversarial : Tensor
        ``[*S]`` the perturbed item before and after (the candidate for CA, the query
        for QA).
    query : Tensor
        ``[*S]`` the clean query.
    candidate : Tensor
        ``[*S]`` the clean chosen candidate.
    target : int
        Gallery index of the chosen candidate.
    before_indices, after_indices : Tensor
        ``[k]`` gallery indices of the top-k for the query before and after (the query's
        own copy excluded); for CA, ``target`` in ``after_indices`` stands for the
        adversarial candidate.
    before_images, after_images : Tensor
        ``[k, *S]`` the corresponding images (for CA the adversarial candidate appears
        in ``after_images``).
    target_rank_before, target_rank_after : int
        Position of the chosen candidate in the query's list (0 = top: the number of
        listed items strictly closer, the query's own copy not listed), before and after.
    labels_before, labels_after : Tensor or None
        ``[k]`` labels of the listed items.
    query_index : int or None
        Gallery index of the query.
    query_label, candidate_label : int or None
        Labels of the query and of the chosen candidate.
    sp_indices : Tensor or None
        ``[G]`` gallery indices of ``C_SP``, the query's G nearest items the SP term keeps
        in place (QA only, Eq. 12).
    gallery_size : int or None
        ``|X|``: positions run from 0 to ``|X| - 2`` (the query's own copy not listed).
    seed : int or None
        The protocol seed the pair was drawn with.
    """

    attack: str
    eps: float
    clean: Tensor
    adversarial: Tensor
    query: Tensor
    candidate: Tensor
    target: int
    before_indices: Tensor
    after_indices: Tensor
    before_images: Tensor
    after_images: Tensor
    target_rank_before: int
    target_rank_after: int
    labels_before: Tensor | None = None
    labels_after: Tensor | None = None
    query_index: int | None = None
    query_label: int | None = None
    candidate_label: int | None = None
    sp_indices: Tensor | None = None
    gallery_size: int | None = None
    seed: int | None = None


def ranking_example(
    model: Callable[[Tensor], Tensor],
    gallery: Gallery,
    inputs: Tensor,
    attack: str = "CA+",
    eps: float = 0.1,
    *,
    k: int = 8,
    seed: int = 0,
    top_fraction: float = 0.01,
) -> RankingExample:
    """Attack one sampled (query, candidate) pair with w = m = 1 and record its ranking list.

    The pair is the first one [sample_cell][rankattack.evaluation.sampling.sample_cell] draws for
    ``cell_seed(seed, attack, eps, 1)``, i.e. the first attack of the protocol's cell.
    """
    attack = check_choice(attack, "attack", ATTACKS)
    eps = check_real(eps, "eps", low=0.0)
    k = check_int(k, "k", low=1)
    _check_inputs_match(gallery, inputs)
    if k > len(gallery) - 2:
        raise ValueError(f"k must be at most |X| - 2 = {len(gallery) - 2}, got {k}")
    device = gallery.embeddings.device
    inputs = inputs.to(device)
    generator = torch.Generator().manual_seed(cell_seed(seed, attack, eps, 1))
    sample = sample_cell(gallery, attack, 1, 1, generator, top_fraction)
    anchor = sample.anchors.to(device)  # [1]
    partner = sample.partners.to(device)  # [1, 1]
    direction = "raise" if attack.endswith("+") else "lower"
    dist = gallery.distance
    emb = gallery.embeddings
    labels = gallery.labels
    sp_idx: Tensor | None = None
    if attack.startswith("CA"):
        q_idx, c_idx = int(partner[0, 0]), int(anchor[0])
        ca = CandidateAttack(model, gallery, direction, eps=eps)
        res = ca.run(inputs[anchor], query_embeddings=emb[partner])
        adv = res.adversarial
        adv_emb = ca.embed(adv)
        qp = dist.prepare(emb[q_idx : q_idx + 1])
        d_before = dist.pairwise(qp, gallery.prepared)[0]
        d_after = d_before.clone()
        d_after[c_idx] = dist.pairwise(qp, dist.prepare(adv_emb))[0, 0]
        clean, query, adv_img = inputs[c_idx], inputs[q_idx], adv[0]
    else:
        q_idx, c_idx = int(anchor[0]), int(partner[0, 0])
        qa = QueryAttack(model, gallery, direction, eps=eps)
        res = qa.run(inputs[anchor], candidate_indices=partner, query_indices=anchor)
        adv = res.adversarial
        adv_emb = qa.embed(adv)
        if qa.sp_size > 0:
            sp_idx = qa.semantic_set(
                qa.embed(inputs[anchor]), emb[partner], partner, anchor.unsqueeze(1)
            )[0]
        d_before = dist.pairwise(dist.prepare(emb[q_idx : q_idx + 1]), gallery.prepared)[0]
        d_after = dist.pairwise(dist.prepare(adv_emb), gallery.prepared)[0]
        clean = query = inputs[q_idx]
        adv_img = adv[0]
    own = torch.zeros_like(d_before, dtype=torch.bool)
    own[q_idx] = True  # the query's own copy is not part of its displayed list
    rank_b = int(((d_before < d_before[c_idx]) & ~own).sum())
    rank_a = int(((d_after < d_after[c_idx]) & ~own).sum())
    before_idx = torch.topk(d_before.masked_fill(own, math.inf), k, largest=False).indices
    after_idx = torch.topk(d_after.masked_fill(own, math.inf), k, largest=False).indices
    after_imgs = inputs[after_idx].clone()
    if attack.startswith("CA"):
        after_imgs[after_idx == c_idx] = adv_img
    return RankingExample(
        attack=attack,
        eps=eps,
        clean=clean.detach().cpu(),
        adversarial=adv_img.detach().cpu(),
        query=query.detach().cpu(),
        candidate=inputs[c_idx].detach().cpu(),
        target=c_idx,
        before_indices=before_idx.cpu(),
        after_indices=after_idx.cpu(),
        before_images=inputs[before_idx].detach().cpu(),
        after_images=after_imgs.detach().cpu(),
        target_rank_before=rank_b,
        target_rank_after=rank_a,
        labels_before=None if labels is None else labels[before_idx].cpu(),
        labels_after=None if labels is None else labels[after_idx].cpu(),
        query_index=q_idx,
        query_label=None if labels is None else int(labels[q_idx]),
        candidate_label=None if labels is None else int(labels[c_idx]),
        sp_indices=None if sp_idx is None else sp_idx.cpu(),
        gallery_size=len(gallery),
        seed=seed,
    )
