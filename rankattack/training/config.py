"""The training run's config ([TrainConfig][rankattack.training.config.TrainConfig]) and its result
([TrainResult][rankattack.training.config.TrainResult])."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rankattack._validation import check_choice, check_int, check_real
from rankattack.defenses.base import canonical_defense
from rankattack.defenses.miners import MINERS
from rankattack.defenses.registry import DEFAULT_MINERS, TRAINING_DEFAULTS
from rankattack.distances import get_distance
from rankattack.losses import LOSS_NAMES
from rankattack.models import MODEL_NAMES
from rankattack.pgd import default_alpha, default_steps
from rankattack.training.recipes import RECIPES

__all__ = ["TrainConfig", "TrainResult"]


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint).

    Parameters
    ----------
    model : {"c2f1", "c2f2", "lenet", "resnet18"}, default "c2f1"
    embedding_dim : int, optional
        Default the model's own (1024 / 512 / 128 / 512).
    in_channels : int, default 1
    loss : {"triplet", "contrastive"}, default "triplet"
    metric : {"cosine", "euclidean", "normalized-euclidean"}, default "cosine"
    margin : float, optional
        Default 0.2 (cosine, normalized Euclidean) or 1.0 (Euclidean).
    epochs : int, default 8
        Total epochs; one epoch draws ``len(train_x) // batch_size`` batches.
    batch_size : int, default 128
    samples_per_class : int, default 2
        K images per class slot of a batch (every image then has a positive).
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 1e-6
        Adam (L2) weight decay.
    seed : int, default 0
        Seeds the weights, the sampling and the adversary's noise.
    device : str, optional
        Default ``"cuda"`` when available, else the CPU.
    defense : {None, "est", "act", "hm", "madry", "shift-suppress"}
        ``None`` trains a vanilla model; see [rankattack.defenses][] ("embedding-shift" is
        another name of "est" and is stored as "est").
    eps : float, optional
        L-inf radius of the defense's adversary. Default (with ``alpha`` and ``steps``) the
        defense's 28x28 settings (``rankattack.defenses.registry.TRAINING_DEFAULTS``):
        77/255, 3/255 and 32 steps for "est", "act" and "hm" (robrank's), 0.3 with the
        paper's schedule for "madry" and "shift-suppress".
    alpha, steps : optional
        PGD step size and iterations of the adversary. When ``eps`` is given, default the
        paper's schedule for it ([rankattack.pgd.default_alpha][],
        [default_steps][rankattack.pgd.default_steps]: 0.01 and 30 for eps = 0.3).
    miner : {None, "random", "spc2", "softhard"}
        The in-batch triplet miner ([rankattack.defenses.miners][]): "random", one triplet
        per image; "spc2", robrank's SPC-2 miner (every other image an anchor, its pair partner
        the positive, a random negative); "softhard", robrank's soft-hard SPC-2 miner. Default
        the defense's own: "spc2" for "act", "softhard" for "hm", "random" otherwise. For
        "spc2" and "softhard", ``samples_per_class`` 2 gives robrank's SPC-2 batches.
    recipe : {"default", "eccv2020", "robrank"}, default "default"
        The batch scheme of a training recipe ([rankattack.training.recipes][]):
        "default", class-balanced batches whose triplets the miner picks; "eccv2020", the
        ECCV 2020 reference code's shuffled batches with ``batch_size // C`` random triplets
        per class ([PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler];
        ``miner`` and ``samples_per_class`` are then unused, and ``miner`` must be left unset);
        "robrank", class-balanced batches with robrank's miners when ``miner`` is unset ("spc2",
        and "softhard" for "hm"). This field alone sets only the batches and miners:
        [recipe_config][rankattack.training.recipes.recipe_config] fills the recipe's other settings
        as well (epochs, batch size, weight decay...). Checkpoints written before the field existed
        resume as "default".
    """

    model: str = "c2f1"
    embedding_dim: int | None = None
    in_channels: int = 1
    loss: str = "triplet"
    metric: str = "cosine"
    margin: float | None = None
    epochs: int = 8
    batch_size: int = 128
    samples_per_class: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-6
    seed: int = 0
    device: str | None = None
    defense: str | None = None
    eps: float | None = None
    alpha: float | None = None
    steps: int | None = None
    miner: str | None = None
    recipe: str = "default"

    def __post_init__(self) -> None:
        check_choice(self.model, "model", MODEL_NAMES)
        if self.embedding_dim is not None:
            check_int(self.embedding_dim, "embedding_dim", low=1)
        check_int(self.in_channels, "in_channels", low=1)
        check_choice(self.loss, "loss", LOSS_NAMES)
        get_distance(self.metric)
        if self.margin is not None:
            check_real(self.margin, "margin", low=0.0)
        check_int(self.epochs, "epochs", low=1)
        check_int(self.samples_per_class, "samples_per_class", low=2)
        check_int(self.batch_size, "batch_size", low=1)
        check_choice(self.recipe, "recipe", tuple(RECIPES))
        if not self._triplet_batches and self.batch_size < 2 * self.samples_per_class:
            raise ValueError(
                f"batch_size must hold at least two classes of samples_per_class="
                f"{self.samples_per_class} images (>= {2 * self.samples_per_class}), "
                f"got {self.batch_size}"
            )
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_real(self.weight_decay, "weight_decay", low=0.0)
        check_int(self.seed, "seed", low=0)
        if self.device is not None:
            torch.device(self.device)  # raises on a malformed device string
        if self.defense is not None:
            self.defense = canonical_defense(self.defense)
        if self.eps is not None:
            check_real(self.eps, "eps", low=0.0)
        if self.alpha is not None:
            check_real(self.alpha, "alpha", low=0.0, low_open=True)
        if self.steps is not None:
            check_int(self.steps, "steps", low=1)
        if self.miner is not None:
            check_choice(self.miner, "miner", MINERS)
        if self.miner is not None and self._triplet_batches:
            raise ValueError(
                f"miner must be left unset with recipe={self.recipe!r}, whose batches are "
                f"already triplets, got {self.miner!r}"
            )

    @property
    def _triplet_batches(self) -> bool:
        """The recipe's sampler draws the triplets itself (no miner)."""
        return RECIPES[self.recipe].sampler == "per-class-triplets"

    def _defaults(self) -> tuple[float, float | None, int | None]:
        """The defense's ``(eps, alpha, steps)`` when no eps is given (None: the schedule)."""
        if self.eps is not None:
            return float(self.eps), None, None
        return TRAINING_DEFAULTS.get(self.defense or "est", (0.3, None, None))

    @property
    def pgd_eps(self) -> float:
        """The adversary's L-inf radius actually used."""
        return self._defaults()[0]

    @property
    def pgd_alpha(self) -> float:
        """The adversary's step size actually used."""
        if self.alpha is not None:
            return float(self.alpha)
        alpha = self._defaults()[1]
        return default_alpha(self.pgd_eps) if alpha is None else alpha

    @property
    def pgd_steps(self) -> int:
        """The adversary's number of iterations actually used."""
        if self.steps is not None:
            return self.steps
        steps = self._defaults()[2]
        return default_steps(self.pgd_eps, self.pgd_alpha) if steps is None else steps

    @property
    def triplet_miner(self) -> str:
        """The name of the miner actually used."""
        key = self.defense or ""
        return self.miner or RECIPES[self.recipe].miners.get(key) or DEFAULT_MINERS[key]

    def effective(self) -> dict[str, Any]:
        """[to_dict][rankattack.training.config.TrainConfig.to_dict] with the settings actually used
        in place of the defaults.

        Two configs that train the same way have the same ``effective()`` (what a resumed
        run is checked against); the adversary's settings are left out without a defense,
        the miner and ``samples_per_class`` when the recipe's batches are triplets.
        """
        out = self.to_dict()
        out["miner"] = self.triplet_miner
        if self._triplet_batches:
            out["miner"] = out["samples_per_class"] = None
        if self.defense is None:
            out["eps"] = out["alpha"] = out["steps"] = None
        else:
            out["eps"], out["alpha"], out["steps"] = self.pgd_eps, self.pgd_alpha, self.pgd_steps
        return out

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain JSON-serializable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from [to_dict][rankattack.training.config.TrainConfig.to_dict] output
        (unknown keys are an error)."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class TrainResult:
    """What [train][rankattack.training.train] returns.

    Attributes
    ----------
    model : nn.Module
        The trained model (in eval mode).
    config : TrainConfig
    history : list of dict
        One entry per finished epoch: ``epoch`` (1-based), ``loss`` (mean training loss),
        ``time`` (wall seconds of the epoch), ``batches``.
    checkpoint : Path or None
        The checkpoint file (``None`` without ``out_dir``).
    diverged : bool
        The training loss became NaN or infinite (training stopped there).
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    diverged: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def complete(self) -> bool:
        """All ``config.epochs`` epochs are done."""
        return self.epochs_done >= self.config.epochs
