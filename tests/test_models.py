"""Tests for rankattack.models: architectures, shapes, input sizes, names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from rankattack import MaxShiftAttack
from rankattack.models import C2F1, C2F2, MODEL_NAMES, LeNet, ResNet18, build_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_c2f1_is_the_papers_architecture() -> None:
    model = C2F1()
    assert model.conv1.weight.shape == (32, 1, 5, 5)
    assert model.conv2.weight.shape == (64, 32, 5, 5)
    assert model.fc1.weight.shape == (1024, 3136)
    # 832 + 51264 + 3212288: conv1, conv2, fc (Madry's MNIST network minus its classifier)
    assert _n_params(model) == 3_264_384


def test_c2f1_forward_matches_the_reference_computation_on_28x28() -> None:
    torch.manual_seed(0)
    model = C2F1(embedding_dim=10).eval()
    x = torch.rand(3, 1, 28, 28)
    h = F.max_pool2d(F.relu(model.conv1(x)), 2)
    h = F.max_pool2d(F.relu(model.conv2(h)), 2)
    assert h.shape == (3, 64, 7, 7)
    expected = model.fc1(h.reshape(3, -1))
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_c2f2_is_the_benchmark_architecture() -> None:
    model = C2F2()
    assert model.conv1.weight.shape == (32, 1, 5, 5)
    assert model.conv2.weight.shape == (64, 32, 5, 5)
    assert model.fc1.weight.shape == (1024, 3136)
    assert model.fc2.weight.shape == (512, 1024)
    # C2F1's 3,264,384 + fc 1024->512 (524,800)
    assert _n_params(model) == 3_789_184


def test_c2f2_forward_matches_the_reference_computation_on_28x28() -> None:
    torch.manual_seed(0)
    model = C2F2(embedding_dim=10).eval()
    x = torch.rand(3, 1, 28, 28)
    h = F.max_pool2d(F.relu(model.conv1(x)), 2)
    h = F.max_pool2d(F.relu(model.conv2(h)), 2)
    expected = model.fc2(F.relu(model.fc1(h.reshape(3, -1))))
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [8, 16, 28, 32])
def test_models_accept_square_inputs_of_several_sizes(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, embedding_dim=12).eval()
    out = model(torch.rand(2, 1, size, size))
    assert out.shape == (2, 12)
    assert out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize(
    ("name", "cls", "dim"),
    [
        ("c2f1", C2F1, 1024),
        ("c2f2", C2F2, 512),
        ("lenet", LeNet, 128),
        ("resnet18", ResNet18, 512),
    ],
)
def test_build_model_defaults_and_case(name: str, cls: type, dim: int) -> None:
    model = build_model(name.upper())
    assert isinstance(model, cls)
    assert model.embedding_dim == dim
    three = build_model(name, embedding_dim=7, in_channels=3).eval()
    assert three(torch.rand(1, 3, 28, 28)).shape == (1, 7)


def test_resnet18_is_adapted_to_small_inputs() -> None:
    model = ResNet18()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3  # stem, 8 blocks x 2, 3 projection shortcuts


def test_c2f1_input_size_sizes_the_fc_layer() -> None:
    torch.manual_seed(0)
    model = C2F1(embedding_dim=6, input_size=16).eval()
    assert model.fc1.weight.shape == (6, 64 * 4 * 4)
    x = torch.rand(2, 1, 16, 16)
    h = F.max_pool2d(F.relu(model.conv2(F.max_pool2d(F.relu(model.conv1(x)), 2))), 2)
    torch.testing.assert_close(model(x), model.fc1(h.flatten(1)), rtol=0, atol=0)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 6)  # other sizes are pooled to 4x4
    with pytest.raises(ValueError, match="input_size"):
        C2F1(input_size=2)


def test_lenet_has_lower_capacity_than_c2f1() -> None:
    assert _n_params(LeNet()) < _n_params(C2F1())


def test_unknown_model_name_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"c2f1.*lenet.*resnet18.*'vgg'"):
        build_model("vgg")


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_embedding_dim(bad: int) -> None:
    with pytest.raises(ValueError, match="embedding_dim"):
        C2F1(embedding_dim=bad)


def test_wrong_input_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        C2F1()(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="at least 4x4"):
        LeNet()(torch.rand(2, 1, 3, 3))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_work_with_the_attacks(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, embedding_dim=8)
    model.train()
    x = torch.rand(3, 1, 8, 8)
    res = MaxShiftAttack(model, eps=0.1, alpha=0.05, steps=2).run(x)
    assert model.training  # mode restored
    assert bool((res.shift > 0).all())
    assert float((res.adversarial - x).abs().max()) <= 0.1 + 1e-6
