"""The train/test split of a labelled image dataset, and stratified sampling.

[DatasetSplit][rankattack.data.split.DatasetSplit] holds float inputs in ``[0, 1]`` and int64 class
labels for a training and a test part, plus where each row came from;
[DatasetSplit.subset][rankattack.data.split.DatasetSplit.subset] draws a smaller split that keeps
each class's share.

The private helpers below it allocate a sample per class (largest remainders)
and split positions per class into train and test; the latter is what
[rankattack.data.digits.load_digits][] splits scikit-learn's digits with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DatasetSplit"]


@dataclass(frozen=True, eq=False)
class DatasetSplit:
    """A train/test split of a labelled image dataset.

    Parameters
    ----------
    train_x, test_x : Tensor
        Float inputs in ``[0, 1]`` shaped ``[N, ...]`` (``[N, C, H, W]`` for
        the built-in datasets).
    train_y, test_y : Tensor
        int64 class labels shaped ``[N]`` with values in ``[0, num_classes)``.
    name : str
        Name of the dataset, e.g. ``"digits"``.
    num_classes : int
        Number of classes.
    train_index, test_index : Tensor or None, optional
        int64 positions of each row in the source it was taken from (for
        ``"digits"`` the row of scikit-learn's array, for MNIST-style data the
        row of the respective IDX file). Kept through
        [subset][rankattack.data.split.DatasetSplit.subset], so any row can be traced back to its
        source sample.
    class_names : tuple of str or None, optional
        The name of each class, indexed by label (an image folder's subfolder
        names); ``None`` when the classes are known by their numbers only.

    Notes
    -----
    Equality is identity (``eq=False``): comparing tensors elementwise is not
    a meaningful ``==`` for a dataset.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    name: str
    num_classes: int
    train_index: Tensor | None = None
    test_index: Tensor | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.class_names is not None and (
            not isinstance(self.class_names, tuple)
            or len(self.class_names) != self.num_classes
            or not all(isinstance(n, str) for n in self.class_names)
        ):
            raise ValueError(
                f"class_names must be None or a tuple of {self.num_classes} strings "
                f"(one per class), got {self.class_names!r}"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(f"num_classes must be an int, got {type(self.num_classes).__name__}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        for part in ("train", "test"):
            x = getattr(self, f"{part}_x")
            y = getattr(self, f"{part}_y")
            index = getattr(self, f"{part}_index")
            if not isinstance(x, Tensor) or not isinstance(y, Tensor):
                raise TypeError(f"{part}_x and {part}_y must be torch tensors")
            if not x.is_floating_point() or x.dim() < 2:
                raise ValueError(
                    f"{part}_x must be a floating tensor of shape [N, ...] with at least "
                    f"2 dimensions, got dtype {x.dtype} and shape {tuple(x.shape)}"
                )
            if y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"{part}_y must be an int64 tensor of shape [{x.shape[0]}], "
                    f"got dtype {y.dtype} and shape {tuple(y.shape)}"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(
                    f"{part}_y must hold labels in [0, {self.num_classes}), "
                    f"got values in [{int(y.min())}, {int(y.max())}]"
                )
            if index is not None and (
                not isinstance(index, Tensor)
                or index.dtype != torch.int64
                or tuple(index.shape) != (x.shape[0],)
            ):
                raise ValueError(f"{part}_index must be None or an int64 tensor of shape [N]")

    def __repr__(self) -> str:
        return (
            f"DatasetSplit(name={self.name!r}, num_classes={self.num_classes}, "
            f"train_x={tuple(self.train_x.shape)}, test_x={tuple(self.test_x.shape)})"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 28, 28)``."""
        return tuple(self.train_x.shape[1:])

    def subset(
        self, n_train: int | None = None, n_test: int | None = None, seed: int = 0
    ) -> DatasetSplit:
        """Return a smaller, stratified random split for quick runs.

        Each class keeps (as nearly as integer counts allow) its share of the
        original part: class ``c`` gets ``floor(n * count_c / N)`` samples and
        the leftover samples go to the classes with the largest remainders.
        Samples are drawn at random with a ``torch.Generator`` seeded by
        ``seed`` (one per part, so the test subset does not depend on
        ``n_train``), and kept in their original order.

        Parameters
        ----------
        n_train, n_test : int or None, optional
            Number of training / test samples to keep; ``None`` keeps the
            whole part unchanged.
        seed : int, optional
            Seed of the random draw. The same seed gives the same subset.

        Returns
        -------
        DatasetSplit
            A new split; ``train_index`` / ``test_index`` still refer to the
            original source.

        Raises
        ------
        ValueError
            If ``n_train`` or ``n_test`` is not in ``[1, N]`` for its part.
        """
        # One generator per part, so each part's draw depends only on its own size.
        train = self._sample_part("train", n_train, torch.Generator().manual_seed(seed))
        test = self._sample_part("test", n_test, torch.Generator().manual_seed(seed))
        return DatasetSplit(
            train_x=train[0],
            train_y=train[1],
            test_x=test[0],
            test_y=test[1],
            name=self.name,
            num_classes=self.num_classes,
            train_index=train[2],
            test_index=test[2],
            class_names=self.class_names,
        )

    def _sample_part(
        self, part: str, n: int | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        x: Tensor = getattr(self, f"{part}_x")
        y: Tensor = getattr(self, f"{part}_y")
        index: Tensor | None = getattr(self, f"{part}_index")
        if n is None:
            return x, y, index
        total = int(y.shape[0])
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise ValueError(
                f"n_{part} must be an int in [1, {total}] (the size of the {part} "
                f"part) or None, got {n!r}"
            )
        keep = _stratified_sample(y, n, generator)
        return x[keep], y[keep], (None if index is None else index[keep])


def _class_positions(labels: Tensor) -> list[Tensor]:
    """Positions of each present class in ``labels``, classes in ascending order."""
    return [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]


def _stratified_sample(labels: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Sorted positions of a stratified random sample of size ``n`` from ``labels``."""
    total = int(labels.shape[0])
    groups = _class_positions(labels)
    # Largest-remainder allocation in exact integer arithmetic.
    quotas = [n * len(g) // total for g in groups]
    remainders = [n * len(g) % total for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (-remainders[i], i))
    for i in order[: n - sum(quotas)]:
        quotas[i] += 1
    chosen = [
        g[torch.randperm(len(g), generator=generator)[:q]]
        for g, q in zip(groups, quotas, strict=True)
    ]
    return torch.sort(torch.cat(chosen)).values


def _stratified_split(
    labels: Tensor, test_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Split positions per class into (train, test), each sorted.

    Every class gets ``round(count * test_fraction)`` test samples, clamped so
    that both parts keep at least one sample of it.
    """
    train_parts: list[Tensor] = []
    test_parts: list[Tensor] = []
    for group in _class_positions(labels):
        count = len(group)
        if count < 2:
            raise ValueError(
                "a stratified split needs at least 2 samples per class, "
                f"class {int(labels[group[0]])} has {count}"
            )
        n_test = min(max(math.floor(count * test_fraction + 0.5), 1), count - 1)
        perm = group[torch.randperm(count, generator=generator)]
        test_parts.append(perm[:n_test])
        train_parts.append(perm[n_test:])
    train = torch.sort(torch.cat(train_parts)).values
    test = torch.sort(torch.cat(test_parts)).values
    return train, test
