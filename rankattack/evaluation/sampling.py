"""The paper's sampling rules for the attack protocol (Zhou et al., ECCV 2020, Sec. 4).

For each of T independent attacks the protocol picks an *anchor* (the item perturbed:
the candidate c for CA, the query q for QA) and its *partners* (the w queries Q of a CA,
the m candidates C of a QA):

- CA+: the w queries are drawn uniformly from X;
- CA-: the w queries are drawn from ``{q in X | R(c, q) <= 1%}``, the candidate's top-1%
  neighbours;
- QA+: the m candidates are drawn uniformly from X;
- QA-: the m candidates are drawn from ``{c in X | R(q, c) <= 1%}``, the query's top-1%.

The anchor itself is never one of its partners, and the partners of one attack are
distinct. All draws come from a ``torch.Generator`` seeded per cell by
[cell_seed][rankattack.evaluation.sampling.cell_seed], so a cell's samples depend only on
``(seed, attack, eps, size)``: a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rankattack._validation import check_choice, check_int, check_real
from rankattack.gallery import Gallery

__all__ = [
    "ATTACKS",
    "CellSample",
    "cell_seed",
    "sample_anchors",
    "sample_cell",
    "sample_top",
    "sample_uniform",
    "top_pool_size",
]

#: The four attacks of the protocol, in the paper's column order.
ATTACKS = ("CA+", "CA-", "QA+", "QA-")

#: Elements of the random keys drawn at once when sampling distinct items.
_KEY_BUDGET = 2**22


@dataclass(frozen=True)
class CellSample:
    """The inputs of the T attacks of one cell.

    Attributes
    ----------
    anchors : Tensor
        ``[T]`` gallery indices of the perturbed items (candidates for CA, queries for QA).
    partners : Tensor
        ``[T, size]`` gallery indices of the w queries (CA) or m candidates (QA).
    """

    anchors: Tensor
    partners: Tensor


def cell_seed(seed: int, attack: str, eps: float, size: int) -> int:
    """A 63-bit generator seed derived from ``(seed, attack, eps, size)``.

    Independent of the order in which cells run, of Python's hash randomization and of
    the platform.
    """
    seed = check_int(seed, "seed")
    eps = check_real(eps, "eps", low=0.0)
    size = check_int(size, "size", low=0)
    text = f"rankattack|{seed}|{attack}|{eps!r}|{size}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def top_pool_size(gallery_size: int, size: int, top_fraction: float = 0.01) -> int:
    """Number of nearest neighbours the CA- / QA- partners are drawn from.

    ``{x | R(a, x) <= top_fraction}`` holds the ``floor(top_fraction * |X|)`` nearest
    items after the anchor itself (normalized rank ``p / |X|`` at position ``p``). On a
    small gallery the pool is widened to ``size`` so that ``size`` distinct partners
    exist.
    """
    gallery_size = check_int(gallery_size, "gallery_size", low=2)
    size = check_int(size, "size", low=1)
    top_fraction = check_real(top_fraction, "top_fraction", low=0.0, high=1.0, low_open=True)
    if size > gallery_size - 1:
        raise ValueError(
            f"size must be at most |X| - 1 = {gallery_size - 1} (partners are distinct and "
            f"exclude the anchor), got {size}"
        )
    pool = math.floor(top_fraction * gallery_size + 1e-9)
    return min(max(pool, size, 1), gallery_size - 1)


def sample_anchors(gallery_size: int, samples: int, generator: torch.Generator) -> Tensor:
    """``[T]`` anchor indices: distinct when ``T <= |X|`` (T = |X| attacks every item once,
    as in the paper), otherwise whole permutations repeated and a last partial one."""
    gallery_size = check_int(gallery_size, "gallery_size", low=1)
    samples = check_int(samples, "samples", low=1)
    reps = -(-samples // gallery_size)
    perms = [torch.randperm(gallery_size, generator=generator) for _ in range(reps)]
    return torch.cat(perms)[:samples]


def _distinct_smallest(keys: Tensor, size: int) -> Tensor:
    """Column positions of the ``size`` smallest keys of each row (a uniform subset)."""
    return torch.topk(keys, size, dim=1, largest=False, sorted=False).indices


def sample_uniform(
    gallery_size: int, anchors: Tensor, size: int, generator: torch.Generator
) -> Tensor:
    """``[T, size]`` distinct gallery indices drawn uniformly, each row excluding its anchor.

    Used for the queries of CA+ and the candidates of QA+.
    """
    gallery_size = check_int(gallery_size, "gallery_size", low=2)
    size = check_int(size, "size", low=1)
    if size > gallery_size - 1:
        raise ValueError(f"size must be at most |X| - 1 = {gallery_size - 1}, got {size}")
    anchors = anchors.to("cpu", torch.long)
    t = anchors.shape[0]
    if size == 1:
        idx = torch.randint(0, gallery_size - 1, (t, 1), generator=generator)
        return idx + (idx >= anchors.unsqueeze(1)).long()
    rows = max(1, _KEY_BUDGET // gallery_size)
    out = []
    for s in range(0, t, rows):
        a = anchors[s : s + rows]
        keys = torch.rand(a.shape[0], gallery_size, generator=generator)
        keys.scatter_(1, a.unsqueeze(1), 2.0)  # the anchor is never among the smallest
        out.append(_distinct_smallest(keys, size))
    return torch.cat(out) if out else torch.empty(0, size, dtype=torch.long)


def sample_top(
    gallery: Gallery,
    anchors: Tensor,
    size: int,
    generator: torch.Generator,
    top_fraction: float = 0.01,
) -> Tensor:
    """``[T, size]`` distinct indices drawn uniformly from each anchor's top neighbours.

    The pool is ``{x in X \\ {a} | R(a, x) <= top_fraction}``
    ([top_pool_size][rankattack.evaluation.sampling.top_pool_size] items, nearest to the anchor's
    embedding, the anchor's own index excluded): the queries of CA- and the candidates of QA- (paper
    Sec. 4).
    """
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    pool_size = top_pool_size(len(gallery), size, top_fraction)
    anchors_dev = gallery.check_indices(anchors, "anchors", ndim=1)
    emb = gallery.embeddings[anchors_dev]
    _, pool = gallery.topk(emb, pool_size, exclude_indices=anchors_dev.unsqueeze(1))
    keys = torch.rand(anchors_dev.shape[0], pool_size, generator=generator)
    pick = _distinct_smallest(keys, size).to(pool.device)
    return torch.gather(pool, 1, pick).cpu()


def sample_cell(
    gallery: Gallery,
    attack: str,
    size: int,
    samples: int,
    generator: torch.Generator,
    top_fraction: float = 0.01,
) -> CellSample:
    """Draw the anchors and partners of T attacks of one kind (paper Sec. 4).

    Parameters
    ----------
    gallery : Gallery
        The candidate set X (the test set, whose items are also the attacked inputs).
    attack : {"CA+", "CA-", "QA+", "QA-"}
    size : int
        w (CA) or m (QA).
    samples : int
        T, the number of attacks.
    generator : torch.Generator
        CPU generator (seed it with [cell_seed][rankattack.evaluation.sampling.cell_seed]).
    top_fraction : float, default 0.01
        The neighbourhood of CA- / QA- (top-1% in the paper).

    Returns
    -------
    CellSample
        CPU index tensors.
    """
    attack = check_choice(attack, "attack", ATTACKS)
    if not isinstance(gallery, Gallery):
        raise TypeError(f"gallery must be a rankattack.Gallery, got {type(gallery).__name__}")
    n = len(gallery)
    if n < 2:
        raise ValueError(f"the gallery needs at least 2 items, got {n}")
    size = check_int(size, "size", low=1)
    samples = check_int(samples, "samples", low=1)
    top_pool_size(n, size, top_fraction)  # validates size and top_fraction
    anchors = sample_anchors(n, samples, generator)
    if attack.endswith("+"):
        partners = sample_uniform(n, anchors, size, generator)
    else:
        partners = sample_top(gallery, anchors, size, generator, top_fraction)
    return CellSample(anchors=anchors, partners=partners)
