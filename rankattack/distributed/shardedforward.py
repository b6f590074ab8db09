"""A model run by all ranks together: each forwards its share of the batch, all see all rows.

Under DDP training every rank holds the same global batch (the same sampler, the same
seed) and calls the defense on it, so mining, adversaries and losses see exactly what one
process sees. [ShardedForward][rankattack.distributed.shardedforward.ShardedForward] wraps the model
so that the expensive part, the network's forward and backward passes, is split: rank r forwards its
contiguous share of the rows ([shard_range][rankattack.distributed.shard_range]) and the embeddings
of all shares are all-gathered into the ``[B, D]`` a single process would compute.

Gradients follow the same split. Every rank computes the same loss from the gathered
embeddings, so the gradient reaching the gather is the same on every rank and its rows
of the share are passed to the network as they are: each rank's parameter gradient is
the loss's gradient through its own rows, and summing them over ranks (the
DistributedDataParallel hook of [rankattack.distributed.distributeddefense][]) gives
the single-process gradient. When the inputs require a gradient (a defense's PGD
adversary), the shares' input gradients are all-gathered, so that every rank takes the
same PGD step on every row.

Communication per call: one all-gather of ``[B, D]`` embeddings; with an input gradient,
one all-gather of ``[B, *S]`` in the backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rankattack.distributed.environment import environment
from rankattack.distributed.sharding import shard_sizes

__all__ = ["ShardedForward", "gather_rows"]


def _all_gather_rows(local: Tensor, sizes: list[int]) -> Tensor:
    """Concatenate every rank's ``local`` rows (``sizes[r]`` of rank r), padded to one size."""
    width = max(sizes)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])


class _GatherRows(torch.autograd.Function):
    """Forward: all ranks' rows. Backward: this rank's rows of the (replicated) gradient."""

    @staticmethod
    def forward(ctx: Any, local: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.lo = sum(sizes[:rank])
        ctx.hi = ctx.lo + sizes[rank]
        return _all_gather_rows(local, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return grad[ctx.lo : ctx.hi], None, None


class _ShareRows(torch.autograd.Function):
    """Forward: this rank's rows. Backward: every rank's rows of the gradient, gathered."""

    @staticmethod
    def forward(ctx: Any, full: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.sizes = sizes
        lo = sum(sizes[:rank])
        return full[lo : lo + sizes[rank]].clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return _all_gather_rows(grad.contiguous(), ctx.sizes), None, None


def gather_rows(local: Tensor, total: int) -> Tensor:
    """``[total, ...]``: the rows of every rank's share, in rank order (differentiable).

    ``local`` holds this rank's share ([shard_sizes][rankattack.distributed.shard_sizes] of
    ``total``); the gradient of the result must be the same on every rank.
    """
    env = environment()
    if not env.active:
        return local
    sizes = shard_sizes(total, env.world_size)
    out: Tensor = _GatherRows.apply(local, sizes, env.rank)
    return out


class ShardedForward(nn.Module):
    """``module`` over this rank's share of each batch, with every rank's rows gathered.

    Parameters
    ----------
    module : nn.Module
        The embedding network ``[B, *S] -> [B, D]``; its parameters and modes are
        this wrapper's.

    Notes
    -----
    A collective: all ranks call it together on the same ``[B, *S]`` batch, with
    ``B`` at least the world size. Without a job it is ``module``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, inputs: Tensor) -> Tensor:
        env = environment()
        if not env.active:
            out: Tensor = self.module(inputs)
            return out
        b = int(inputs.shape[0])
        if b < env.world_size:
            raise ValueError(
                f"a batch of {b} inputs cannot be shared by {env.world_size} ranks; use "
                f"batches of at least {env.world_size}"
            )
        sizes = shard_sizes(b, env.world_size)
        if inputs.requires_grad:
            share = _ShareRows.apply(inputs, sizes, env.rank)
        else:
            lo = sum(sizes[: env.rank])
            share = inputs[lo : lo + sizes[env.rank]]
        local = self.module(share)
        return gather_rows(local, b)
