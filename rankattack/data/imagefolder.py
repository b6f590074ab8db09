"""A folder of images with one subfolder per class, read with Pillow.

[load_image_folder][rankattack.data.imagefolder.load_image_folder] reads ``root/<class>/<image>``
(one subfolder per class, the classes numbered in the sorted order of their names), or
``root/train/<class>/<image>`` and ``root/test/<class>/<image>`` when the folder comes split. Images
are read with Pillow (the optional extra ``images``: ``pip install "rankattack[images]"``), imported
when the function is called, converted to grayscale when every image is grayscale and to RGB
otherwise, optionally resized, and scaled to ``[0, 1]``. Data without a split of its own is split
per class like the digits (a share of each class held out, seeded).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rankattack.data.split import DatasetSplit, _stratified_split

__all__ = ["IMAGE_SUFFIXES", "has_split_folders", "list_images", "load_image_folder"]

logger = logging.getLogger(__name__)

#: File suffixes read as images (case ignored); other files are skipped.
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip

#: Pillow modes read as one grayscale channel; any other mode is read as RGB.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            'reading a folder of images needs Pillow: pip install "rankattack[images]" '
            "(or pip install pillow)"
        ) from None
    return Image


def has_split_folders(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` holds ``train/`` and ``test/`` folders (the data comes split)."""
    return (Path(root) / "train").is_dir() and (Path(root) / "test").is_dir()


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(
    root: str | os.PathLike[str], class_names: tuple[str, ...] | None = None
) -> tuple[list[Path], Tensor, tuple[str, ...]]:
    """The image files of ``root/<class>/``, their labels and the class names.

    Parameters
    ----------
    root : path
        A folder with one subfolder per class.
    class_names : tuple of str, optional
        The classes to number (e.g. the training folder's, for the test folder); every
        subfolder must be one of them. Default: the sorted subfolder names.

    Returns
    -------
    (files, labels, class_names)
        Files sorted by class, then by name; int64 labels ``[N]``; the class names.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a directory.
    ValueError
        If there is no class subfolder, a class folder holds no image, or a subfolder is
        not among ``class_names``.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"no folder of images at {base}")
    dirs = _class_dirs(base)
    if not dirs:
        raise ValueError(
            f"{base} holds no class subfolders; expected {base}/<class>/<image> (one "
            f"subfolder per class), or train/ and test/ folders of them"
        )
    names = tuple(d.name for d in dirs) if class_names is None else class_names
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        if d.name not in names:
            raise ValueError(
                f"{d} is a class the training folder does not have (classes: {', '.join(names)})"
            )
        images = sorted(
            p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise ValueError(
                f"{d} holds no images (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
            )
        files += images
        labels += [names.index(d.name)] * len(images)
    return files, torch.tensor(labels, dtype=torch.int64), names


def _read(files: list[Path], image_size: int | None, progress: bool) -> Tensor:
    """``[N, C, H, W]`` float32 in [0, 1]: grayscale if every image is, else RGB."""
    Image = _pillow()
    modes, sizes = [], []
    for f in files:
        try:
            with Image.open(f) as im:  # reads the header only
                modes.append(im.mode)
                sizes.append(im.size)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{f}: not a readable image ({exc})") from None
    mode = "L" if all(m in _GRAY_MODES for m in modes) else "RGB"
    if image_size is None:
        first = sizes[0]
        for f, size in zip(files, sizes, strict=True):
            if size != first:
                raise ValueError(
                    f"the images differ in size ({files[0]} is {first[0]}x{first[1]}, {f} is "
                    f"{size[0]}x{size[1]}); give image_size (--image-size) to resize them all"
                )
    channels = 1 if mode == "L" else 3
    width, height = (image_size, image_size) if image_size is not None else sizes[0]
    out = np.empty((len(files), height, width, channels), dtype=np.uint8)
    items: Any = files
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(files, desc="reading images", unit="image")
    for i, f in enumerate(items):
        with Image.open(f) as im:
            im = im.convert(mode)
            if im.size != (width, height):
                im = im.resize((width, height), Image.Resampling.BILINEAR)
            out[i] = np.asarray(im, dtype=np.uint8).reshape(height, width, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = False,
) -> DatasetSplit:
    """Load a folder of images, one subfolder per class, as a train/test split.

    Layouts:

    * ``root/<class>/<image>``: split per class, ``round(count * test_fraction)`` images
      of each class (at least one, and at least one left for training) drawn with a
      generator seeded by ``seed`` into the test part;
    * ``root/train/<class>/<image>`` and ``root/test/<class>/<image>``: that split (the
      test classes must be among the training classes; ``test_fraction`` and ``seed``
      are not used).

    Classes are numbered in the sorted order of their folder names (the training
    folder's). Images are read with Pillow (extra ``images``), converted to one
    grayscale channel when every image is grayscale, to RGB otherwise (alpha dropped),
    resized to ``image_size x image_size`` (bilinear; the aspect ratio is not kept) when
    given, and scaled to ``[0, 1]`` (pixel / 255, no mean/std).

    Parameters
    ----------
    root : path
        The folder.
    image_size : int, optional
        Side of the returned images. Default: the images' own size, which then must be
        the same for all.
    test_fraction : float, optional
        Share of each class held out, in ``(0, 1)`` (default 0.2).
    seed : int, optional
        Seed of the split.
    progress : bool, optional
        Show a progress bar while reading.

    Returns
    -------
    DatasetSplit
        float32 images ``[N, C, H, W]``, int64 labels, ``name`` the folder's name,
        ``class_names`` the class folders' names, ``train_index`` / ``test_index`` the
        positions in the sorted file list of [list_images][rankattack.data.imagefolder.list_images]
        (of ``root``, or of ``root/train`` and ``root/test``).

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``root`` is not a directory.
    ValueError
        If the layout is wrong, an image cannot be read, the images differ in size
        without ``image_size``, or a class has fewer than 2 images to split.
    """
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    if not isinstance(test_fraction, int | float) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    base = Path(root)
    _pillow()  # fail before listing a large folder
    if has_split_folders(base):
        train_files, train_y, names = list_images(base / "train")
        test_files, test_y, _ = list_images(base / "test", class_names=names)
        x = _read(train_files + test_files, image_size, progress)
        n = len(train_files)
        train_x, test_x = x[:n], x[n:]
        train_idx = torch.arange(n)
        test_idx = torch.arange(len(test_files))
        if tuple(test_x.shape[1:]) != tuple(train_x.shape[1:]):
            raise ValueError(f"{base}: the test images differ in size from the training images")
    else:
        files, labels, names = list_images(base)
        x = _read(files, image_size, progress)
        generator = torch.Generator().manual_seed(seed)
        train_idx, test_idx = _stratified_split(labels, float(test_fraction), generator)
        train_x, train_y = x[train_idx], labels[train_idx]
        test_x, test_y = x[test_idx], labels[test_idx]
    logger.info(
        "loaded %s: %d classes, %d train and %d test images of %s",
        base, len(names), len(train_y), len(test_y), tuple(train_x.shape[1:]),
    )  # fmt: skip
    return DatasetSplit(
        train_x=train_x.contiguous(),
        train_y=train_y,
        test_x=test_x.contiguous(),
        test_y=test_y,
        name=base.resolve().name or "images",
        num_classes=len(names),
        train_index=train_idx,
        test_index=test_idx,
        class_names=names,
    )
