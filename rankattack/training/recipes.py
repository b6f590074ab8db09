"""Named training recipes: how a published model was trained, as one preset.

A recipe is a batch scheme (which sampler draws the batches and their triplets, kept in
[TrainConfig.recipe][rankattack.training.TrainConfig] and saved in every checkpoint) and
the settings of the run it reproduces. [recipe_config][rankattack.training.recipes.recipe_config]
builds the [TrainConfig][rankattack.training.TrainConfig] of a recipe, the values you give
overriding the recipe's (``rankattack train --recipe NAME`` does the same with the options given).

The recipes (``RECIPES``):

* ``"default"``: this library's defaults, [TrainConfig][rankattack.training.TrainConfig] as it is:
  class-balanced batches of 128 images (2 per class slot), one random triplet per image
  ([ClassBalancedSampler][rankattack.training.ClassBalancedSampler]), 8 epochs, Adam lr 1e-3, weight
  decay 1e-6.
* ``"eccv2020"``: the training of the Fashion-MNIST ranking models of Zhou et al.,
  "Adversarial Ranking Attack and Defense" (ECCV 2020), as the code released with the paper
  does it (``cdluminate/advrank`` at commit c38641d, directory ``Code/``; its model
  ``faC_c2f2_trip`` is this library's C2F1):

  - C2F1, 1024-d embedding, cosine distance (``models/faC_c2f2_siamese.py`` L37-61);
  - shuffled batches of 1,000 images, each image once per epoch (``config.yml`` L56-60,
    ``models/datasets/fashion.py`` L47-51), and in each batch, for each of the 10 classes,
    100 anchors, 100 positives of the class and 100 negatives of the other classes drawn
    with replacement among the batch's images
    ([PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler];
    ``models/faC_c2f2_trip.py`` L47-59);
  - triplet loss ``mean [0.2 + d(a, p) - d(a, n)]_+`` with ``d = 1 - cos``
    (``models/faC_c2f2_trip.py`` L30, L63-65);
  - Adam, lr 1e-3 (``config.yml`` L58), weight decay 1e-7 (``Train.py`` L61-62), no
    learning-rate schedule, **30 epochs** (``config.yml`` L57);
  - with the embedding-shift defense (``--defense est``): eps 0.3
    (``pipeline/train-fashion-defense.sh`` L4) and the paper's PGD schedule, step
    ``min(max(eps / 10, 1/255), 0.01)`` and ``min(max(10, 2 eps / step), 30)`` steps, so 0.01
    and 30 steps for eps 0.3 (``models/faC_c2f2_siamese.py`` L126-127): the defaults of
    [TrainConfig][rankattack.training.TrainConfig] once eps is given.

  The same authors' later Fashion-MNIST model (``cdluminate/advorder``, ICCV 2021,
  ``lib/faC_c2f2.py`` and ``config.yml`` L31-35) trains 32 epochs with one triplet per
  training image; that is not this recipe.
* ``"robrank"``: the 28x28 ranking models of robrank (Zhou et al., "Adversarial Attack and
  Defense in Deep Ranking", T-PAMI 2024; ``cdluminate/robrank``), whose Fashion-MNIST rows
  the [robustness benchmark][rankattack.evaluation.robustness] compares against:

  - C2F2, 512-d embedding (``robrank/configs/configs_rank.py``: ``embedding_dim`` of the 28x28
    models), cosine distance (``--metric normalized-euclidean`` for robrank's N rows);
  - batches of 128 pairs of one class each, 256 images, and one triplet per *pair*: the
    pair's first image is the anchor, its second the positive, a random image of another
    class the negative (robrank's "p" losses and SPC-2 sampling; the ``"spc2"`` miner);
  - triplet loss, margin 0.2 for the cosine and the normalized Euclidean distance
    (``robrank/losses/triplet.py``);
  - Adam, lr 1e-3, weight decay 1e-7, no schedule, **8 epochs** (the ``rc2f2`` config's 16,
    halved for pair losses);
  - with a defense: the adversary of the 28x28 configs, eps 77/255, 32 steps of 3/255 (the
    training defaults of EST, ACT and HM here); the triplets of EST and ACT come from the
    SPC-2 miner, HM's sources from soft-hard mining (robrank's HM models ``*hmetsm*``).

Examples
--------
>>> cfg = recipe_config("eccv2020")
>>> cfg.recipe, cfg.epochs, cfg.batch_size, cfg.weight_decay
('eccv2020', 30, 1000, 1e-07)
>>> recipe_config("eccv2020", defense="est").pgd_eps
0.3
>>> rob = recipe_config("robrank", defense="act")
>>> rob.model, rob.batch_size, rob.triplet_miner, round(rob.pgd_eps * 255)
('c2f2', 256, 'spc2', 77)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rankattack._validation import check_choice

if TYPE_CHECKING:
    from rankattack.training.config import TrainConfig

__all__ = ["RECIPES", "Recipe", "recipe_config"]

#: The batch schemes a recipe can name (see [rankattack.training.samplers.recipe_sampler][]).
SAMPLERS = ("class-balanced", "per-class-triplets")


@dataclass(frozen=True)
class Recipe:
    """A named training recipe.

    Attributes
    ----------
    name : str
    sampler : {"class-balanced", "per-class-triplets"}
        Its batch scheme: [ClassBalancedSampler][rankattack.training.ClassBalancedSampler] (the
        defense's miner picks the triplets in each batch) or
        [PerClassTripletSampler][rankattack.training.samplers.PerClassTripletSampler] (the batches
        are triplets).
    settings : Mapping
        [TrainConfig][rankattack.training.TrainConfig] values it sets (the others keep their
        defaults).
    defense_eps : Mapping
        The adversary's eps for a defense (canonical name) trained without an explicit eps.
    miners : Mapping
        The miner of a run without an explicit one, by defense (canonical name; ``""`` for
        no defense); a defense it does not name keeps its own default miner. A key that is not
        a canonical defense name or a miner that is not one of
        ``rankattack.defenses.miners.MINERS`` is a ``ValueError``.
    source : str
        Where the recipe comes from.
    """

    name: str
    sampler: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    defense_eps: Mapping[str, float] = field(default_factory=dict)
    miners: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        check_choice(self.sampler, "sampler", SAMPLERS)
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        object.__setattr__(self, "defense_eps", MappingProxyType(dict(self.defense_eps)))
        object.__setattr__(self, "miners", MappingProxyType(dict(self.miners)))
        from rankattack.defenses.miners import MINERS  # the package imports training
        from rankattack.defenses.registry import DEFENSE_CLASSES

        for defense, miner in self.miners.items():
            check_choice(defense, "miners' keys", ("", *DEFENSE_CLASSES))
            check_choice(miner, f"miners[{defense!r}]", MINERS)


#: Recipe name -> [Recipe][rankattack.training.recipes.Recipe].
RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {
        "default": Recipe(
            "default",
            "class-balanced",
            source="this library's defaults (TrainConfig)",
        ),
        "eccv2020": Recipe(
            "eccv2020",
            "per-class-triplets",
            settings={
                "model": "c2f1",
                "loss": "triplet",
                "metric": "cosine",
                "margin": 0.2,
                "epochs": 30,
                "batch_size": 1000,
                "lr": 1e-3,
                "weight_decay": 1e-7,
            },
            defense_eps={"est": 0.3},
            source="Zhou et al., ECCV 2020: the released code, cdluminate/advrank@c38641d "
            "Code/ (models/faC_c2f2_trip.py, config.yml, Train.py, "
            "pipeline/train-fashion-defense.sh)",
        ),
        "robrank": Recipe(
            "robrank",
            "class-balanced",
            settings={
                "model": "c2f2",
                "loss": "triplet",
                "metric": "cosine",
                "margin": 0.2,
                "epochs": 8,
                "batch_size": 256,
                "samples_per_class": 2,
                "lr": 1e-3,
                "weight_decay": 1e-7,
            },
            miners={"": "spc2", "est": "spc2", "act": "spc2", "hm": "softhard"},
            source="Zhou et al., T-PAMI 2024: cdluminate/robrank (robrank/configs/configs_rank.py "
            "rc2f2 and the 28x28 adversary, robrank/losses/triplet.py, robrank/defenses/amd.py)",
        ),
    }
)


def recipe_config(name: str = "default", **overrides: Any) -> TrainConfig:
    """The [TrainConfig][rankattack.training.TrainConfig] of the recipe ``name``.

    Parameters
    ----------
    name : str, default "default"
        A name of ``RECIPES``.
    **overrides
        [TrainConfig][rankattack.training.TrainConfig] values that replace the recipe's (given as
        they are: ``None`` is a value). With a defense and no ``eps``, the recipe's eps for
        that defense (``Recipe.defense_eps``) is used when it has one.

    Returns
    -------
    TrainConfig
        With ``recipe=name``.

    Raises
    ------
    ValueError
        If ``name`` is not a recipe, an override is not a config field (or is ``recipe``), or
        the config rejects a value.
    """
    from rankattack.defenses.base import canonical_defense
    from rankattack.training.config import TrainConfig  # config imports this module

    check_choice(name, "recipe", tuple(RECIPES))
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"recipe"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"overrides must be TrainConfig fields other than recipe, got {unknown}; "
            f"known: {sorted(fields)}"
        )
    recipe = RECIPES[name]
    values: dict[str, Any] = {**recipe.settings, **overrides}
    defense = values.get("defense")
    if defense is not None and values.get("eps") is None:
        eps = recipe.defense_eps.get(canonical_defense(defense))
        if eps is not None:
            values["eps"] = eps
    return TrainConfig(**values, recipe=name)
