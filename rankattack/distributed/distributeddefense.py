"""DDP training of any defense: the whole defended loss as one DistributedDataParallel module.

A defense's loss ([rankattack.defenses.Defense.loss][rankattack.defenses.base.Defense.loss]) calls
the model several times (benign mining, the PGD adversary, the final embeddings), which a plain
DistributedDataParallel wrapper of the model does not allow between two backward passes.
[DistributedDefense][rankattack.distributed.distributeddefense.DistributedDefense] wraps the *loss*
instead: DistributedDataParallel runs the defense's loss once per step on a
[ShardedForward][rankattack.distributed.ShardedForward] of the model (each rank forwards its share
of the global batch, all ranks see all embeddings), and sums the parameter gradients of the ranks in
the backward pass, overlapped with it. Every rank draws the same global batch and the same adversary
noise (the same seed), so the step is the single-process step on the global batch, up to the order
of floating-point additions.

Batch normalization needs the statistics of the global batch: on CUDA the model's
batch-norm layers become ``torch.nn.SyncBatchNorm``; on the CPU (gloo) a model with
batch normalization is refused.

[distribute_defense][rankattack.distributed.distributeddefense.distribute_defense] is what the
training loop calls: the defense itself without a job, a
[DistributedDefense][rankattack.distributed.distributeddefense.DistributedDefense] in one, after
checking that every rank resumed the same state
([check_same][rankattack.distributed.collectives.check_same]).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rankattack._validation import check_unit_range
from rankattack.defenses.base import Defense, Triplets, TripletSelector
from rankattack.distributed.collectives import check_same, tensor_digest
from rankattack.distributed.environment import environment
from rankattack.distributed.shardedforward import ShardedForward

__all__ = ["DistributedDefense", "distribute_defense", "state_digest"]

logger = logging.getLogger(__name__)


class _DefenseLoss(nn.Module):
    """The defense's loss of a batch as a module (what DistributedDataParallel runs)."""

    def __init__(self, net: ShardedForward, defense: Defense) -> None:
        super().__init__()
        self.net = net
        self.defense = defense

    def forward(self, inputs: Tensor, labels: Tensor | None, triplets: Triplets | None) -> Tensor:
        if triplets is not None:
            return self.defense.triplet_loss(self.net, inputs, triplets)
        assert labels is not None
        return self.defense.loss(self.net, inputs, labels, check=False)


def _sum_gradients(state: object, bucket: dist.GradBucket) -> torch.futures.Future[Tensor]:
    """DDP communication hook: the sum of the ranks' gradients (not their mean).

    Each rank's gradient is the loss's gradient through its share of the batch, so the
    single-process gradient is their sum.
    """
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    assert work is not None
    return work.get_future().then(lambda fut: fut.value()[0])


# DDP compares the hook's annotations with the classes themselves, not their names
_sum_gradients.__annotations__ = {
    "state": object,
    "bucket": dist.GradBucket,
    "return": torch.futures.Future[Tensor],
}


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class DistributedDefense(Defense):
    """A defense whose loss runs under DistributedDataParallel on a sharded model.

    Parameters
    ----------
    defense : Defense
        The defense to train with (its state, e.g. HM's gradual adversary, stays its own).
    model : nn.Module
        The network being trained, on this rank's device; batch-norm layers are turned
        into ``torch.nn.SyncBatchNorm`` in place on CUDA (the parameters and buffers
        are kept).

    Notes
    -----
    Built after the model's state is final (after resuming): DistributedDataParallel
    broadcasts rank 0's parameters and buffers when it is built.
    """

    def __init__(self, defense: Defense, model: nn.Module) -> None:
        if not isinstance(defense, Defense):
            raise TypeError(f"defense must be a rankattack Defense, got {type(defense).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        # the wrapped defense's settings, without running Defense.__init__ again
        self.inner = defense
        self.name = defense.name
        self.distance = defense.distance
        self.margin = defense.margin
        self.ranking_loss = defense.ranking_loss
        self.miner = defense.miner
        device = next(model.parameters()).device
        if _has_batch_norm(model):
            if device.type != "cuda":
                raise ValueError(
                    "model has batch normalization: DDP training on the CPU would normalize "
                    "each rank's share by its own statistics (not the global batch's); train "
                    "it on GPUs (SyncBatchNorm) or in one process"
                )
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.net = ShardedForward(model)
        ids = None
        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        self.ddp = DistributedDataParallel(
            _DefenseLoss(self.net, defense),
            device_ids=ids,
            find_unused_parameters=True,  # a batch without triplets uses no parameter
        )
        self.ddp.register_comm_hook(None, _sum_gradients)

    def _model(self, model: Callable[[Tensor], Tensor]) -> None:
        if model is not self.model and model is not self.net:
            raise ValueError(
                "model must be the network this DistributedDefense was built for "
                "(a DistributedDefense trains one model)"
            )

    def loss(
        self,
        model: Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        *,
        check: bool = True,
    ) -> Tensor:
        """The wrapped defense's loss of the global batch (see
        [Defense.loss][rankattack.defenses.base.Defense.loss]).

        A collective: every rank calls it with the same global batch.
        """
        self._model(model)
        if check:
            check_unit_range(images, "images")
        out: Tensor = self.ddp(images, labels, None)
        return out

    def triplet_loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, triplets: Triplets
    ) -> Tensor:
        self._model(model)
        out: Tensor = self.ddp(inputs, None, triplets)
        return out

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def _loss(
        self, model: Callable[[Tensor], Tensor], inputs: Tensor, select: TripletSelector
    ) -> Tensor:
        return self.inner._loss(self.net, inputs, select)

    def __repr__(self) -> str:
        env = environment()
        return f"DistributedDefense({self.inner!r}, world_size={env.world_size})"


def _flatten(value: Any, tensors: list[Tensor]) -> Any:
    """``value`` with its tensors moved to ``tensors`` (replaced by their position)."""
    if isinstance(value, Tensor):
        tensors.append(value)
        return f"<tensor {len(tensors) - 1}>"
    if isinstance(value, dict):
        return {str(k): _flatten(v, tensors) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, list | tuple):
        return [_flatten(v, tensors) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


def state_digest(*states: Any) -> str:
    """A SHA-256 digest of nested dicts / lists of tensors and plain values (e.g. a model's
    and an optimizer's ``state_dict()``)."""
    tensors: list[Tensor] = []
    skeleton = json.dumps(_flatten(list(states), tensors), sort_keys=True)
    return tensor_digest(tensors, skeleton)


def distribute_defense(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    defense: Defense,
    state: Any = None,
) -> Defense:
    """``defense`` for DDP training of ``model`` when launched, ``defense`` itself otherwise.

    In a job, first checks that every rank holds the same model, optimizer and defense
    state and the same ``state`` (the data's signature, the resumed history: anything
    that must agree), raising ``ValueError`` on every rank when one differs.

    Parameters
    ----------
    model : nn.Module
        The network, on this rank's device, after resuming.
    optimizer : torch.optim.Optimizer
    defense : Defense
    state : optional
        More that must agree across ranks (nested dicts / lists of plain values and
        tensors).
    """
    if not environment().active:
        return defense
    digest = state_digest(model.state_dict(), optimizer.state_dict(), defense.state_dict(), state)
    check_same(digest, "the training state (model, optimizer, defense, data, resumed epoch)")
    logger.info("training with DistributedDataParallel on %d ranks", environment().world_size)
    return DistributedDefense(defense, model)
