"""The attacks' conveniences: eps >= 1 warns, labels are named as such, one direction rule,
chunked runs with progress, and galleries from Datasets / DataLoaders or moved between devices."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rankattack import (
    CandidateAttack,
    Gallery,
    MaxShiftAttack,
    QueryAttack,
    UniversalRankAttack,
)


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, Gallery, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 6))
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return model, Gallery.from_inputs(model, x, torch.arange(40) % 4), x


@pytest.mark.parametrize("cls", [CandidateAttack, QueryAttack, UniversalRankAttack])
def test_eps_of_one_or_more_warns_at_construction(setup, cls) -> None:
    model, gallery, _ = setup
    with pytest.warns(UserWarning, match=r"eps=8 is at least the width .* did you mean eps=8/255"):
        cls(model, gallery, eps=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(model, gallery, eps=8 / 255)  # no warning
    with pytest.warns(UserWarning, match="constrains nothing"):
        MaxShiftAttack(model, eps=1.0)


def test_labels_given_as_queries_are_named(setup) -> None:
    model, gallery, x = setup
    ca = CandidateAttack(model, gallery, eps=0.1)
    labels = torch.arange(4)
    with pytest.raises(ValueError, match="ranking attacks take queries, not labels") as exc:
        ca(x[:4], labels)
    assert "shape (4,)" in str(exc.value) and "torch.int64" in str(exc.value)
    qa = QueryAttack(model, gallery, eps=0.1)
    with pytest.raises(ValueError, match="take chosen candidates, not class labels"):
        qa(x[:4], labels)
    with pytest.raises(ValueError, match=r"idx.unsqueeze\(1\)"):
        qa.run(x[:4], candidate_indices=labels)


def test_direction_defaults_follow_one_documented_rule() -> None:
    """The variant the paper defines first: CA+ (Eq. 4), QA- (Eqs. 8-10), I-CA+ (Eq. 14)."""
    rule = {CandidateAttack: "raise", QueryAttack: "lower", UniversalRankAttack: "raise"}
    for cls, direction in rule.items():
        assert inspect.signature(cls).parameters["direction"].default == direction
        assert "the variant the paper defines first" in " ".join((cls.__doc__ or "").split())
    import rankattack.attacks.base as base

    assert "the variant the paper defines first" in " ".join((base.__doc__ or "").split())


@pytest.mark.parametrize("kind", ["CA", "QA", "shift"])
def test_run_in_chunks_equals_one_run(setup, kind, capsys) -> None:
    model, gallery, x = setup
    q = x[:10]
    if kind == "CA":
        atk = CandidateAttack(model, gallery, eps=0.1, steps=3)
        kw = {"query_embeddings": gallery.embeddings[torch.arange(10, 30).view(10, 2)]}
    elif kind == "QA":
        atk = QueryAttack(model, gallery, eps=0.1, steps=3)
        kw = {"candidate_indices": torch.arange(10, 20).view(10, 1),
              "query_indices": torch.arange(10)}  # fmt: skip
    else:
        atk = MaxShiftAttack(model, eps=0.1, steps=3, random_start=True)
        kw = {}
    torch.manual_seed(0)
    whole = atk.run(q, **kw)
    torch.manual_seed(0)
    chunked = atk.run(q, **kw, batch_size=3, progress=True)
    assert "batch" in capsys.readouterr().err  # the progress bar
    for name in ("adversarial", "rank_before", "rank_after", "sp_rank_after", "shift"):
        a, b = getattr(whole, name, None), getattr(chunked, name, None)
        if a is None:
            assert b is None
            continue
        assert a.shape == b.shape
        if kind != "shift":  # the shift's random start is drawn per chunk
            assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        atk.run(q, **kw, batch_size=0)


def test_gallery_from_dataset_and_dataloader(setup) -> None:
    model, gallery, x = setup
    y = torch.arange(40) % 4
    from_dataset = Gallery.from_inputs(model, TensorDataset(x, y), batch_size=7)
    assert torch.allclose(from_dataset.embeddings, gallery.embeddings, atol=1e-6)
    assert torch.equal(from_dataset.labels, y)
    loader = DataLoader(TensorDataset(x), batch_size=16)  # bare inputs: labels given
    from_loader = Gallery.from_inputs(model, loader, labels=y, progress=True)
    assert torch.allclose(from_loader.embeddings, gallery.embeddings, atol=1e-6)
    assert torch.equal(from_loader.labels, y)
    with pytest.raises(ValueError, match="empty"):
        Gallery.from_inputs(model, TensorDataset(torch.rand(0, 1, 4, 4)))
    with pytest.raises(TypeError, match="floating"):
        Gallery.from_inputs(model, TensorDataset(torch.zeros(4, 1, 4, 4, dtype=torch.uint8)))


def test_gallery_to_device(setup) -> None:
    _, gallery, _ = setup
    assert gallery.to("cpu") is gallery  # already there: itself, like Tensor.to
    assert gallery.to(torch.device("cpu")) is gallery
    if torch.cuda.is_available():  # pragma: no cover - CPU CI
        g = gallery.to("cuda")
        assert g.embeddings.device.type == "cuda" and g.labels.device.type == "cuda"
        assert g.to("cpu").embeddings.device.type == "cpu"
