"""The attacks' one argument resolver: the ways a user names an attack's targets.

A ranking attack perturbs inputs ``[N, *S]`` (the candidates of a Candidate Attack, the
queries of a Query Attack, either for the universal attack); each input comes with the
fixed side of its objective, which the user names in one of several ways:

- each candidate's w queries (CA, Eq. 4 / 7): inputs ``queries`` ``[N, w, *S]`` or
  ``query_embeddings`` ``[N, w, D]``;
- each query's m chosen candidates (QA, Eq. 9 / 11): ``candidate_indices`` ``[N, m]``
  into the gallery, inputs ``candidates`` ``[N, m, *S]`` or ``candidate_embeddings``
  ``[N, m, D]``; optionally with ``query_indices`` ``[N]``, each query's own position in
  the gallery (kept out of ``C_SP``, Eq. 12, and out of every "self excluded" ranking);
- each query's one target (TMA): ``target_indices`` ``[N]`` into the gallery or
  ``target_embeddings`` ``[N, D]``;
- each query's class (LTM, GTM): ``labels`` ``[N]``, classes the gallery holds.

[TargetResolver][rankattack.attacks.targets.TargetResolver] turns each of them into validated
embeddings on the gallery's device (shape, dtype, range, finiteness and device checks, with errors
that name the argument); [check_gallery][rankattack.attacks.targets.check_gallery],
[check_labelled_gallery][rankattack.attacks.targets.check_labelled_gallery] and
[check_sp_size][rankattack.attacks.targets.check_sp_size] validate what the attacks' constructors
share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rankattack._validation import check_int, check_tensor
from rankattack.attacks.base import RankingAttack
from rankattack.gallery import Gallery

__all__ = [
    "CandidateSet",
    "TargetResolver",
    "check_gallery",
    "check_labelled_gallery",
    "check_sp_size",
    "exactly_one",
]


def check_gallery(gallery: Any) -> Gallery:
    """The gallery an attack ranks in must be a [Gallery][rankattack.Gallery]."""
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    return gallery


def check_labelled_gallery(gallery: Any, attack: str) -> Gallery:
    """The gallery of a label-driven attack: labels of at least two classes."""
    gallery = check_gallery(gallery)
    if gallery.labels is None:
        raise ValueError(f"gallery must have labels (Gallery(..., labels=...)) for {attack}")
    if gallery.labels.unique().numel() < 2:
        raise ValueError(f"gallery labels must hold at least two classes for {attack}")
    return gallery


def check_sp_size(sp_size: Any, gallery: Gallery) -> int:
    """G, the size of ``C_SP`` (Eq. 12): an int in ``[0, |X|)``."""
    size = check_int(sp_size, "sp_size", low=0)
    if size >= len(gallery):
        raise ValueError(
            f"sp_size must be smaller than the gallery ({len(gallery)} items), got {sp_size}"
        )
    return size


def exactly_one(**given: Tensor | None) -> None:
    """Raise ``ValueError`` unless exactly one of the named arguments is given."""
    if sum(value is not None for value in given.values()) != 1:
        *others, last = given
        raise ValueError(f"give exactly one of {', '.join(others)} or {last}")


@dataclass(frozen=True)
class CandidateSet:
    """Each query's m chosen candidates, resolved (the fixed side of QA, Eq. 9 / 11).

    Attributes
    ----------
    embeddings : Tensor
        ``[N, m, D]`` raw embeddings of the chosen candidates.
    indices : Tensor or None
        ``[N, m]`` int64 gallery indices, when the candidates were named by index.
    query_indices : Tensor or None
        ``[N, 1]`` int64 gallery position of each query, when given.
    """

    embeddings: Tensor
    indices: Tensor | None = None
    query_indices: Tensor | None = None


@dataclass(frozen=True)
class TargetResolver:
    """Resolve the targets of one attack call on ``inputs``.

    Parameters
    ----------
    attack : RankingAttack
        Embeds target inputs ([RankingAttack.embed][rankattack.attacks.base.RankingAttack.embed])
        and checks their range
        ([RankingAttack.check_inputs][rankattack.attacks.base.RankingAttack.check_inputs]).
    gallery : Gallery
        The candidate set X: indices point into it, embeddings must match its dimension,
        and every result is on its device.
    inputs : Tensor
        ``[N, *S]`` the perturbed inputs, already checked; target sets need N rows of
        inputs of shape S.
    name, row : str
        How messages call the inputs and one of them ("queries" and "query").
    """

    attack: RankingAttack
    gallery: Gallery
    inputs: Tensor
    name: str = "inputs"
    row: str = "input"

    def queries(self, queries: Tensor | None, query_embeddings: Tensor | None) -> Tensor:
        """Raw embeddings ``[N, w, D]`` of each input's w queries (CA's fixed side).

        Exactly one of ``queries`` ``[N, w, *S]`` (embedded by the attack's model) or
        ``query_embeddings`` ``[N, w, D]``, with ``1 <= w <= |X|``.
        """
        exactly_one(queries=queries, query_embeddings=query_embeddings)
        if queries is not None:
            emb = self._embed_sets(queries, "queries", "w")
        else:
            emb = self._set_embeddings(query_embeddings, "query_embeddings", "w")
        self._check_set_size(emb.shape[1], "queries w")
        return emb

    def candidates(
        self,
        candidate_indices: Tensor | None = None,
        candidates: Tensor | None = None,
        candidate_embeddings: Tensor | None = None,
        query_indices: Tensor | None = None,
    ) -> CandidateSet:
        """Each input's m chosen candidates (QA's fixed side), with ``1 <= m <= |X|``.

        Exactly one of ``candidate_indices`` ``[N, m]`` into the gallery, ``candidates``
        ``[N, m, *S]`` (embedded by the attack's model) or ``candidate_embeddings``
        ``[N, m, D]``; ``query_indices`` ``[N]`` is optional.
        """
        exactly_one(
            candidate_indices=candidate_indices,
            candidates=candidates,
            candidate_embeddings=candidate_embeddings,
        )
        if candidate_embeddings is not None:
            emb = self._set_embeddings(candidate_embeddings, "candidate_embeddings", "m")
        elif candidate_indices is not None:
            if isinstance(candidate_indices, Tensor) and candidate_indices.dim() == 1:
                raise ValueError(
                    "candidate_indices must be [N, m] gallery indices (each query's m chosen "
                    f"candidates), got shape {tuple(candidate_indices.shape)}: ranking attacks "
                    "take chosen candidates, not class labels (unlike torchattacks' "
                    "atk(images, labels)); for one candidate per query pass idx.unsqueeze(1)"
                )
            candidate_indices = self.gallery.check_indices(candidate_indices, "candidate_indices")
            self._check_rows(candidate_indices, "candidate_indices", "[N, m]")
            emb = self.gallery.embeddings[candidate_indices]
        else:
            assert candidates is not None
            emb = self._embed_sets(candidates, "candidates", "m")
        self._check_set_size(emb.shape[1], "candidates m")
        own = self.own_indices(query_indices)
        return CandidateSet(emb, candidate_indices, None if own is None else own.unsqueeze(1))

    def own_indices(self, query_indices: Tensor | None) -> Tensor | None:
        """Each input's own position in the gallery, ``[N]`` int64 (or ``None``)."""
        if query_indices is None:
            return None
        query_indices = self.gallery.check_indices(query_indices, "query_indices", ndim=1)
        n = self.inputs.shape[0]
        if query_indices.shape[0] != n:
            raise ValueError(
                f"query_indices must have one entry per {self.row} ({n}), got "
                f"{query_indices.shape[0]}"
            )
        return query_indices

    def target(self, target_indices: Tensor | None, target_embeddings: Tensor | None) -> Tensor:
        """Raw embeddings ``[N, D]`` of each input's one target.

        Exactly one of ``target_indices`` ``[N]`` into the gallery or
        ``target_embeddings`` ``[N, D]``.
        """
        exactly_one(target_indices=target_indices, target_embeddings=target_embeddings)
        if target_indices is not None:
            target_indices = self.gallery.check_indices(target_indices, "target_indices", ndim=1)
            self._check_rows(target_indices, "target_indices", "[N]")
            return self.gallery.embeddings[target_indices]
        emb = self.gallery.check_embeddings(target_embeddings, "target_embeddings", 2)
        self._check_rows(emb, "target_embeddings", "[N, D]")
        return emb

    def labels(self, labels: Any, own_indices: Tensor | None = None) -> Tensor:
        """Each input's class, ``[N]`` int64 on the gallery's device, checked.

        Every label must be a class of the (labelled) gallery, and when ``own_indices``
        ``[N]`` is given, the gallery's label of each input's own copy must equal it.
        """
        check_tensor(labels, "labels", ndim=1, integer=True)
        self._check_rows(labels, "labels", "[N]")
        gallery_labels = self.gallery.labels
        if gallery_labels is None:
            raise ValueError("labels need a gallery with labels (Gallery(..., labels=...))")
        labels = labels.to(device=gallery_labels.device, dtype=torch.long)
        missing = ~torch.isin(labels, gallery_labels)
        if bool(missing.any()):
            raise ValueError(
                f"labels must be classes of the gallery: {int(missing.sum())} of {len(labels)} "
                f"{self.name} have a label no gallery item has (e.g. {int(labels[missing][0])})"
            )
        if own_indices is not None:
            wrong = gallery_labels[own_indices] != labels
            if bool(wrong.any()):
                first = int(wrong.nonzero()[0, 0])
                raise ValueError(
                    f"query_indices must point at each {self.row}'s own copy in the gallery, "
                    f"whose label must equal labels: {int(wrong.sum())} differ (first at "
                    f"position {first}: gallery label {int(gallery_labels[own_indices][first])}, "
                    f"label {int(labels[first])})"
                )
        return labels

    def _embed_sets(self, sets: Tensor, name: str, k: str) -> Tensor:
        """Embed target inputs ``[N, k, *S]`` to ``[N, k, D]``."""
        if isinstance(sets, Tensor) and not sets.is_floating_point() and sets.dim() <= 2:
            what = (
                "queries each candidate should rank high or low for"
                if k == "w"
                else ("candidates each query should rank high or low")
            )
            raise ValueError(
                f"{name} must be [N, {k}, *S] inputs (the {k} {what}), got a {sets.dtype} "
                f"tensor of shape {tuple(sets.shape)}, which looks like class labels: ranking "
                f"attacks take {name}, not labels (unlike torchattacks' atk(images, labels))"
            )
        self.attack.check_inputs(sets, name, min_ndim=3)
        n, shape = self.inputs.shape[0], self.inputs.shape[1:]
        if sets.shape[0] != n or sets.shape[2:] != shape:
            raise ValueError(
                f"{name} must be [N, {k}, *S] = [{n}, {k}, {', '.join(map(str, shape))}] "
                f"to match {self.name}, got shape {tuple(sets.shape)}"
            )
        size = sets.shape[1]
        return self.attack.embed(sets.flatten(0, 1), name, self.gallery.dim).view(n, size, -1)

    def _set_embeddings(self, value: Any, name: str, k: str) -> Tensor:
        """Check target embeddings ``[N, k, D]``; move them to the gallery."""
        emb = self.gallery.check_embeddings(value, name, 3)
        self._check_rows(emb, name, f"[N, {k}, D]")
        return emb

    def _check_rows(self, value: Tensor, name: str, shape: str) -> None:
        n = self.inputs.shape[0]
        if value.shape[0] != n:
            raise ValueError(
                f"{name} must be {shape} with N = {n} (one row per {self.row}), "
                f"got shape {tuple(value.shape)}"
            )

    def _check_set_size(self, k: int, what: str) -> None:
        if not 1 <= k <= len(self.gallery):
            raise ValueError(
                f"the number of {what} must be in [1, |X| = {len(self.gallery)}], got {k}"
            )
