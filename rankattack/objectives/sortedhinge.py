"""Hinge sums against fixed anchors from sorted distances and prefix sums (CA's fast path).

When the anchors of a hinge sum do not move (the queries of a Candidate Attack), their
distances to the gallery are sorted once; each PGD step then costs one binary search
per anchor instead of a pass over the gallery.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack.gallery import Gallery

__all__ = ["SortedHinge"]


class SortedHinge:
    """Hinge sums against a fixed set of anchors, from sorted distances and prefix sums.

    For a fixed anchor a (a query in CA), ``sum_x [t - d(a, x)]_+ = n t - S_n`` where n
    counts the gallery distances below t and ``S_n`` is their sum: one binary search per
    step instead of a pass over the gallery.
    """

    def __init__(self, gallery: Gallery, anchors: Tensor) -> None:
        # the same kernel as the blockwise hinge, so both paths give the same loss
        d = torch.cat(
            [
                gallery.distance.pairwise(anchors, gallery.prepared[s:e])
                for s, e in gallery._blocks(anchors.shape[0])
            ],
            dim=1,
        )
        self.sorted = d.sort(dim=1).values.contiguous()
        # prefix sums in float64 where the device has it (MPS does not)
        self.acc = torch.float32 if d.device.type == "mps" else torch.float64
        self.cumsum = torch.nn.functional.pad(self.sorted.to(self.acc).cumsum(1), (1, 0))
        self.size = d.shape[1]

    def __call__(self, t: Tensor, sign: float) -> Tensor:
        t64 = t.to(self.acc)
        if sign > 0:
            n = torch.searchsorted(self.sorted, t.detach().contiguous(), side="left")
            out = t64 * n - self.cumsum.gather(1, n)
        else:
            n_le = torch.searchsorted(self.sorted, t.detach().contiguous(), side="right")
            n = self.size - n_le
            out = (self.cumsum[:, -1:] - self.cumsum.gather(1, n_le)) - t64 * n
        return out.to(t.dtype)
