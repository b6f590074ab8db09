"""A folder of images, one subfolder per class: layouts, modes, sizes, splits and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rankattack.data import DatasetSpec, load_dataset, load_image_folder
from rankattack.data.imagefolder import list_images

Image = pytest.importorskip("PIL.Image")


def write_folder(
    root: Path, classes: dict[str, int], size: tuple[int, int] = (6, 5), mode: str = "L"
) -> dict[Path, np.ndarray]:
    """``root/<class>/<i>.png`` with a known pixel pattern per image; returns the pixels."""
    rng = np.random.default_rng(0)
    pixels = {}
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            path = root / name / f"{i:02d}.png"
            Image.fromarray(arr).save(path)  # L for [H, W], RGB for [H, W, 3]
            pixels[path] = arr
    if classes:
        (root / next(iter(classes)) / "notes.txt").write_text("not an image: skipped")
    return pixels


def test_grayscale_folder_split_per_class(tmp_path: Path) -> None:
    pixels = write_folder(tmp_path / "pics", {"cat": 5, "dog": 10, "emu": 4})
    data = load_image_folder(tmp_path / "pics", test_fraction=0.4, seed=1)
    assert data.class_names == ("cat", "dog", "emu") and data.num_classes == 3
    assert data.train_x.shape[1:] == (1, 5, 6)  # [C, H, W] of 6x5 (W x H) images
    assert data.name == "pics"
    # per class: round(count * 0.4) held out (2, 4, 2)
    assert torch.bincount(data.test_y, minlength=3).tolist() == [2, 4, 2]
    assert len(data.train_y) + len(data.test_y) == 19
    files, labels, _ = list_images(tmp_path / "pics")
    for row in range(3):  # rows trace back to files; pixels are value / 255
        f = files[int(data.test_index[row])]
        assert int(data.test_y[row]) == int(labels[int(data.test_index[row])])
        expect = torch.from_numpy(pixels[f]).float() / 255
        assert torch.allclose(data.test_x[row, 0], expect)
    again = load_image_folder(tmp_path / "pics", test_fraction=0.4, seed=1)
    assert torch.equal(again.test_index, data.test_index)  # the seed fixes the split


def test_rgb_resize_and_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write_folder(root / "train", {"a": 3, "b": 3}, size=(9, 7), mode="RGB")
    write_folder(root / "test", {"a": 2, "b": 1}, size=(9, 7), mode="RGB")
    data = load_image_folder(root, image_size=4)
    assert data.train_x.shape == (6, 3, 4, 4) and data.test_x.shape == (3, 3, 4, 4)
    assert data.test_y.tolist() == [0, 0, 1] and data.class_names == ("a", "b")
    assert float(data.train_x.min()) >= 0 and float(data.train_x.max()) <= 1
    assert load_dataset(str(root), image_size=4).train_x.shape == (6, 3, 4, 4)
    spec = DatasetSpec("image-folder", path=str(root), image_size=4)
    assert spec.effective_test_fraction is None and "train/ and test/" in spec.split_rule
    with pytest.raises(ValueError, match="has a train/test split of its own"):
        DatasetSpec("image-folder", path=str(root), test_fraction=0.3)


def test_mixed_modes_read_as_rgb(tmp_path: Path) -> None:
    write_folder(tmp_path / "gray", {"g": 2, "h": 2})
    assert load_image_folder(tmp_path / "gray", test_fraction=0.5).train_x.shape[1] == 1
    write_folder(tmp_path / "mix", {"g": 2})
    write_folder(tmp_path / "mix", {"c": 2}, mode="RGB")
    both = load_image_folder(tmp_path / "mix", test_fraction=0.5)
    assert both.train_x.shape[1] == 3  # one RGB image makes the folder RGB
    gray = both.train_x[both.train_y == both.class_names.index("g")]
    assert torch.equal(gray[:, 0], gray[:, 1])  # grayscale images become equal channels


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda r: None, FileNotFoundError, "no folder of images"),
        (lambda r: r.mkdir(), ValueError, "holds no class subfolders"),
        (lambda r: (r / "empty").mkdir(parents=True), ValueError, "holds no images"),
        (lambda r: write_folder(r, {"one": 1}), ValueError, "at least 2 samples per class"),
    ],
)
def test_layout_errors(tmp_path: Path, make, error, match) -> None:
    root = tmp_path / "bad"
    make(root)
    with pytest.raises(error, match=match):
        load_image_folder(root)


def test_sizes_must_agree_without_image_size(tmp_path: Path) -> None:
    write_folder(tmp_path / "f", {"a": 2}, size=(6, 6))
    write_folder(tmp_path / "f", {"b": 2}, size=(5, 5))
    with pytest.raises(ValueError, match=r"differ in size .* give image_size \(--image-size\)"):
        load_image_folder(tmp_path / "f")
    assert load_image_folder(tmp_path / "f", image_size=5, test_fraction=0.5).test_x.shape[-1] == 5


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    write_folder(tmp_path / "f", {"a": 2, "b": 2})
    bad = tmp_path / "f" / "b" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png: not a readable image"):
        load_image_folder(tmp_path / "f")
