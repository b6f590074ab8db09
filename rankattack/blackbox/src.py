"""Short-range ranking correlation (SRC, tau_S): how well a returned list follows a wanted order."""

from __future__ import annotations

import torch
from torch import Tensor

from rankattack._validation import check_tensor
from rankattack.blackbox.oracle import locate_in_lists
from rankattack.objectives.order import order_agreement

__all__ = ["short_range_correlation"]


def short_range_correlation(returned_ids: Tensor, target_order: Tensor) -> Tensor:
    """tau_S of each returned list against its wanted order (AdvOrder, ICCV 2021, Algorithm 1).

    Over the ``k(k-1)/2`` pairs of the wanted items, a pair scores +1 when both items are
    in the returned (visible) list in the wanted relative order, and -1 when their order
    is wrong or either item is missing; tau_S is the mean, in ``[-1, 1]``. When every
    item is visible it equals Kendall's tau between the wanted and the returned order.

    Parameters
    ----------
    returned_ids : Tensor
        ``[B, N]`` int ranked ids, best first (the visible list; N may be below k).
    target_order : Tensor
        ``[B, k]`` int distinct ids in the wanted order, ``k >= 2``.

    Returns
    -------
    Tensor
        ``[B]`` float32 tau_S.

    Examples
    --------
    >>> import torch
    >>> short_range_correlation(torch.tensor([[4, 2, 9, 7]]), torch.tensor([[2, 9, 4]]))
    tensor([-0.3333])
    """
    check_tensor(returned_ids, "returned_ids", ndim=2, integer=True)
    check_tensor(target_order, "target_order", ndim=2, integer=True)
    if target_order.shape[0] != returned_ids.shape[0]:
        raise ValueError(
            f"target_order must have one row per returned list ({returned_ids.shape[0]}), got "
            f"shape {tuple(target_order.shape)}"
        )
    k = target_order.shape[1]
    if k < 2:
        raise ValueError(f"target_order must hold k >= 2 ids per row, got k = {k}")
    srt = target_order.sort(dim=1).values
    if bool((srt[:, 1:] == srt[:, :-1]).any()):
        raise ValueError("target_order must hold distinct ids in each row")
    with torch.no_grad():
        return order_agreement(locate_in_lists(returned_ids, target_order))
