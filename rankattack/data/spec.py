"""What a dataset is and how it was split: [DatasetSpec][rankattack.data.spec.DatasetSpec], the
record a checkpoint keeps.

A model is only meaningful on the data it was trained for: the same images, at the same
size and scaling, and a test part that never overlaps its training part. A
[DatasetSpec][rankattack.data.spec.DatasetSpec] names all of that (the dataset, where its files are,
the image size, the normalization, the train/test split rule and its seed, the subsets drawn from
it), loads it again with [DatasetSpec.load][rankattack.data.spec.DatasetSpec.load], and turns into a
plain dict for a training checkpoint ([rankattack.training.checkpoints.record_dataset][]). The
command line reads it back so that ``rankattack evaluate --checkpoint ...`` evaluates on the data
the model was trained for, and refuses a request for other data
([DatasetSpec.conflicts][rankattack.data.spec.DatasetSpec.conflicts]).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from rankattack.data.split import DatasetSplit

__all__ = [
    "BUILTIN_DATASETS",
    "DIGITS_IMAGE_SIZE",
    "NORMALIZATION",
    "USER_DATASETS",
    "DatasetSpec",
    "dataset_kind",
]

#: How the library scales inputs: every loader returns pixel values divided by their
#: maximum (uint8 / 255, digits / 16), in ``[0, 1]``; models get no mean/std
#: normalization (wrap a model with [EmbeddingModel][rankattack.wrappers.EmbeddingModel] for one).
NORMALIZATION = "[0, 1] (pixel / max), no mean/std"

#: The built-in datasets ([rankattack.data.load_dataset][]).
BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist")

#: A user's own data: a folder of images (one subfolder per class) or a tensor file.
USER_DATASETS = ("image-folder", "tensor-file")

#: Default side of the digits images (MNIST-sized).
DIGITS_IMAGE_SIZE = 28

#: Default share of each class held out as the test part: digits, and a user's data
#: without a split of its own.
_DIGITS_TEST_FRACTION = 0.5
_USER_TEST_FRACTION = 0.2

#: File suffixes read as tensor files.
TENSOR_SUFFIXES = (".npz", ".pt", ".pth")


def canonical_name(name: str) -> str:
    """``"Fashion_MNIST"`` -> ``"fashion-mnist"``: case and ``_`` vs ``-`` ignored."""
    return name.strip().lower().replace("_", "-")


def dataset_kind(name: str) -> tuple[str, str | None]:
    """What a dataset argument names: ``(kind, path)``.

    A built-in name gives ``(name, None)``; an existing directory
    ``("image-folder", its absolute path)``; an existing ``.npz`` / ``.pt`` / ``.pth`` file
    ``("tensor-file", its absolute path)``.

    Raises
    ------
    ValueError
        For anything else; the message lists what is accepted.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a dataset name or a path, got {name!r}")
    key = canonical_name(name)
    if key in BUILTIN_DATASETS:
        return key, None
    path = os.path.abspath(os.path.expanduser(name))
    if os.path.isdir(path):
        return "image-folder", path
    if os.path.isfile(path):
        if path.lower().endswith(TENSOR_SUFFIXES):
            return "tensor-file", path
        raise ValueError(
            f"name: {name} is a file but not a tensor file (expected one of "
            f"{', '.join(TENSOR_SUFFIXES)})"
        )
    raise ValueError(
        f"unknown dataset {name!r}; valid names are: {', '.join(BUILTIN_DATASETS)}, or the "
        "path of a folder of images (one subfolder per class) or of a .npz / .pt file"
    )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset, its image size, scaling and train/test split: enough to load it again.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (built in), ``"image-folder"`` (a
        folder of images, one subfolder per class:
        [load_image_folder][rankattack.data.imagefolder.load_image_folder]) or
        ``"tensor-file"`` (a ``.npz`` / ``.pt`` file of inputs and labels:
        [load_tensor_file][rankattack.data.tensorfile.load_tensor_file]).
    path : str or None
        Directory of the IDX files (MNIST, Fashion-MNIST; ``None``: the loader's default),
        or the folder / file of a user's data (required for those; kept absolute).
    image_size : int or None
        Side the images are resized to (digits, default 28; image folders, default the
        images' own size).
    test_fraction : float or None
        Share of each class held out as the test part, for data without a split of its
        own (default 0.5 for digits, 0.2 for a user's data); ``None`` (and not allowed)
        for data that comes split.
    split_seed : int
        Seed of the stratified train/test split.
    train_size, test_size : int or None
        Sizes of the stratified subsets drawn from each part (``None``: the whole part).
    subset_seed : int
        Seed of those subsets.
    normalization : str
        How inputs are scaled (``NORMALIZATION``, the only scaling the loaders use).
    input_shape : tuple of int or None
        ``(C, H, W)`` of one input, filled in once the data is loaded
        ([loaded][rankattack.data.spec.DatasetSpec.loaded]).
    num_classes : int or None
        Filled in with ``input_shape``.
    """

    name: str
    path: str | None = None
    image_size: int | None = None
    test_fraction: float | None = None
    split_seed: int = 0
    train_size: int | None = None
    test_size: int | None = None
    subset_seed: int = 0
    normalization: str = NORMALIZATION
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a dataset name, got {self.name!r}")
        object.__setattr__(self, "name", canonical_name(self.name))
        if self.name not in BUILTIN_DATASETS + USER_DATASETS:
            raise ValueError(
                f"unknown dataset {self.name!r}; valid names are: "
                f"{', '.join(BUILTIN_DATASETS + USER_DATASETS)}"
            )
        if self.name in USER_DATASETS:
            if self.path is None:
                raise ValueError(f"path is required for {self.name}")
            object.__setattr__(self, "path", resolve_path(self.path))
        if self.image_size is not None:
            _check_int(self.image_size, "image_size", 1)
            if self.name not in ("digits", "image-folder"):
                raise ValueError(
                    f"image_size applies to digits and image folders only ({self.name} "
                    f"inputs keep their size), got {self.image_size}"
                )
        if self.test_fraction is not None:
            if isinstance(self.test_fraction, bool) or not isinstance(
                self.test_fraction, int | float
            ):
                raise TypeError(f"test_fraction must be a number, got {self.test_fraction!r}")
            if not 0.0 < self.test_fraction < 1.0:
                raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
            if self.name in ("mnist", "fashion-mnist"):
                raise ValueError(
                    f"test_fraction does not apply to {self.name}, which has an official "
                    f"train/test split"
                )
            if self.name in USER_DATASETS and self.has_own_split():
                raise ValueError(
                    f"test_fraction does not apply to {self.path}, which has a train/test "
                    "split of its own"
                )
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if value is not None:
                _check_int(value, key, 1)
        _check_int(self.split_seed, "split_seed", None)
        _check_int(self.subset_seed, "subset_seed", None)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))

    # -- what the spec means --------------------------------------------------------
    @property
    def source(self) -> str:
        """How the command line names the data: the dataset's name, or the user data's path."""
        return self.path if self.name in USER_DATASETS and self.path else self.name

    def has_own_split(self) -> bool:
        """Whether the data comes split (MNIST's files, ``train/`` and ``test/`` folders,
        a tensor file with ``train_x`` ... ``test_y``)."""
        if self.name in ("mnist", "fashion-mnist"):
            return True
        if self.name == "image-folder":
            from rankattack.data.imagefolder import has_split_folders

            return self.path is not None and has_split_folders(self.path)
        if self.name == "tensor-file":
            from rankattack.data.tensorfile import has_split_arrays

            return self.path is not None and has_split_arrays(self.path)
        return False

    @property
    def effective_image_size(self) -> int | None:
        """The side images are resized to (digits: 28 unless given), else ``None``."""
        if self.name == "digits":
            return DIGITS_IMAGE_SIZE if self.image_size is None else self.image_size
        return self.image_size

    @property
    def effective_test_fraction(self) -> float | None:
        """The share held out per class (digits: 0.5, your data: 0.2, unless given);
        ``None`` for data with a split of its own."""
        if self.test_fraction is not None:
            return float(self.test_fraction)
        if self.name == "digits":
            return _DIGITS_TEST_FRACTION
        if self.name in USER_DATASETS and not self.has_own_split():
            return _USER_TEST_FRACTION
        return None

    @property
    def split_rule(self) -> str:
        """The train/test split in words, e.g. ``"stratified: 50% of each class, seed 0"``."""
        fraction = self.effective_test_fraction
        if fraction is None:
            rule = {
                "image-folder": "its train/ and test/ folders",
                "tensor-file": "its train_x/train_y and test_x/test_y arrays",
            }.get(self.name, "the official train/test files")
        else:
            rule = f"stratified: {100 * fraction:g}% of each class held out, seed {self.split_seed}"
        sizes = [
            f"{part} subset of {n}"
            for part, n in (("train", self.train_size), ("test", self.test_size))
            if n is not None
        ]
        if sizes:
            rule += f"; {', '.join(sizes)} (seed {self.subset_seed})"
        return rule

    def describe(self) -> str:
        """One line: name, shape, split, e.g. for error messages and banners."""
        shape = ""
        if self.input_shape is not None:
            shape = " " + "x".join(map(str, self.input_shape))
        elif self.effective_image_size is not None:
            shape = f" {self.effective_image_size}x{self.effective_image_size}"
        where = f" from {self.path}" if self.path else ""
        return f"{self.name}{shape}{where} ({self.split_rule})"

    # -- loading ----------------------------------------------------------------------
    def load(self) -> DatasetSplit:
        """Load the data and draw the subsets; returns the split the spec describes.

        Raises
        ------
        ValueError
            If the loaded inputs do not have the recorded ``input_shape`` or
            ``num_classes`` (the files changed since the spec was recorded).
        FileNotFoundError
            If the files are not found.
        """
        from rankattack.data.digits import load_digits
        from rankattack.data.registry import load_dataset

        fraction = self.effective_test_fraction
        if self.name == "digits":
            assert fraction is not None
            data = load_digits(
                image_size=DIGITS_IMAGE_SIZE if self.image_size is None else self.image_size,
                test_fraction=fraction,
                seed=self.split_seed,
            )
        elif self.name == "image-folder":
            from rankattack.data.imagefolder import load_image_folder

            assert self.path is not None
            data = load_image_folder(
                self.path,
                image_size=self.image_size,
                test_fraction=fraction or _USER_TEST_FRACTION,
                seed=self.split_seed,
            )
        elif self.name == "tensor-file":
            from rankattack.data.tensorfile import load_tensor_file

            assert self.path is not None
            data = load_tensor_file(
                self.path, test_fraction=fraction or _USER_TEST_FRACTION, seed=self.split_seed
            )
        else:
            data = load_dataset(self.name, self.path)
        if self.train_size is not None or self.test_size is not None:
            data = data.subset(self.train_size, self.test_size, seed=self.subset_seed)
        if self.input_shape is not None and tuple(data.input_shape) != self.input_shape:
            raise ValueError(
                f"the data of {self.name} now has inputs of shape {tuple(data.input_shape)}, "
                f"but the recorded dataset had {self.input_shape}"
            )
        if self.num_classes is not None and data.num_classes != self.num_classes:
            raise ValueError(
                f"the data of {self.name} now has {data.num_classes} classes, but the "
                f"recorded dataset had {self.num_classes}"
            )
        return data

    def loaded(self, data: DatasetSplit) -> DatasetSpec:
        """A copy with the input shape and number of classes of ``data`` filled in."""
        return dataclasses.replace(
            self, input_shape=tuple(data.input_shape), num_classes=data.num_classes
        )

    # -- records ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain values only (safe to keep in a checkpoint read with ``weights_only``)."""
        out = dataclasses.asdict(self)
        out["input_shape"] = None if self.input_shape is None else list(self.input_shape)
        out["split"] = self.split_rule
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSpec:
        """Rebuild a spec from [to_dict][rankattack.data.spec.DatasetSpec.to_dict] (unknown keys,
        e.g. ``"split"``, ignored)."""
        if not isinstance(data, dict):
            raise TypeError(f"a dataset record must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def conflicts(self, other: DatasetSpec) -> list[str]:
        """What in ``other`` names different data or a different test part than ``self``.

        Compared: the dataset, the user data's path, the image size, the test fraction
        and the split seed (all as effective values). Not compared: where MNIST's files
        live (they may move) and the subsets (a smaller test subset is still held out).
        """
        out = []
        if self.name != other.name:
            return [f"dataset {other.source} (trained on {self.source})"]
        if self.name in USER_DATASETS and self.path != other.path:
            out.append(f"the data at {other.path} (trained on {self.path})")
        if self.effective_image_size != other.effective_image_size:
            out.append(
                f"image size {other.effective_image_size} (trained on {self.effective_image_size})"
            )
        if self.effective_test_fraction != other.effective_test_fraction:
            out.append(
                f"test fraction {other.effective_test_fraction} "
                f"(trained with {self.effective_test_fraction})"
            )
        elif self.effective_test_fraction is not None and self.split_seed != other.split_seed:
            out.append(f"split seed {other.split_seed} (trained with {self.split_seed})")
        return out


def _check_int(value: Any, name: str, low: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def resolve_path(path: str | os.PathLike[str] | None) -> str | None:
    """An absolute path (as a string), or ``None``."""
    return None if path is None else os.path.abspath(os.fspath(path))
