"""Reference embedding networks of the paper for small grey images (28x28 Fashion-/MNIST).

Each model maps inputs ``[N, C, H, W]`` in ``[0, 1]`` to embeddings ``[N, D]`` and has no
classifier head, so it works with every attack and with [rankattack.Gallery][].

* [C2F1][rankattack.models.C2F1] -- the paper's main model (Sec. 4.1): two 5x5 convolutions with 2x2
  max-pooling and one fully-connected layer, i.e. the Madry MNIST network without its
  last (classification) layer.
* [C2F2][rankattack.models.C2F2] -- the 28x28 ranking network of the robustness benchmark (robrank,
  T-PAMI 2024): C2F1's convolutions with a 1024-unit hidden layer and a 512-d embedding.
* [LeNet][rankattack.models.LeNet] -- a lower-capacity LeNet (Sec. 4.4, transferability).
* [ResNet18][rankattack.models.ResNet18] -- ResNet-18 adapted to small inputs (3x3 stem, no
  max-pool).

Inputs of another square size than 28 are accepted: every convolution keeps the
spatial size ("same" padding) and, when the final feature map is not the one a 28x28
input gives, it is resized to that size by adaptive average pooling, so the layer
shapes (and checkpoints) do not depend on the input size. For 28x28 inputs that
pooling is skipped and the networks are exactly the reference architectures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rankattack._validation import check_int

__all__ = ["C2F1", "C2F2", "MODEL_NAMES", "LeNet", "ResNet18", "build_model"]

logger = logging.getLogger(__name__)


def _check_image_batch(x: Tensor, in_channels: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{name} expects inputs [N, {in_channels}, H, W], got shape {tuple(x.shape)}"
        )
    if x.shape[2] < 4 or x.shape[3] < 4:
        raise ValueError(f"{name} needs inputs of at least 4x4 pixels, got {tuple(x.shape)}")


def _fit_map(x: Tensor, size: int) -> Tensor:
    """Resize a feature map to ``size x size`` (no-op when it already has that size)."""
    if x.shape[-2] == size and x.shape[-1] == size:
        return x
    return F.adaptive_avg_pool2d(x, size)


class C2F1(nn.Module):
    """The paper's C2F1 ranking model (Sec. 4.1): 2 conv layers + 1 fully-connected layer.

    ``conv 1->32 5x5 -> ReLU -> max-pool 2x2 -> conv 32->64 5x5 -> ReLU -> max-pool 2x2
    -> fc 3136->D`` (no activation on the embedding), the network of Madry et al. with
    its classification layer removed.

    Parameters
    ----------
    embedding_dim : int, default 1024
        Output dimension D.
    in_channels : int, default 1
        Input channels C.
    input_size : int, default 28
        The input side the fully-connected layer is sized for: ``fc 64 (s/4)^2 -> D`` with
        ``s = input_size`` (3136 for 28). Inputs of another size are pooled to that map.

    Shape
    -----
    ``[N, C, H, W]`` -> ``[N, D]``; when the 64-channel map is not ``input_size // 4``
    square it is resized to that size (adaptive average pooling) before the
    fully-connected layer.

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F1
    >>> C2F1(embedding_dim=16)(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 16])
    """

    def __init__(
        self, embedding_dim: int = 1024, in_channels: int = 1, input_size: int = 28
    ) -> None:
        super().__init__()
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", low=1)
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.input_size = check_int(input_size, "input_size", low=4)
        self._map = self.input_size // 4
        self.conv1 = nn.Conv2d(self.in_channels, 32, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(64 * self._map * self._map, self.embedding_dim)

    def features(self, x: Tensor) -> Tensor:
        """The flattened 64-channel map after both conv / max-pool blocks, ``[N, 3136]``."""
        _check_image_batch(x, self.in_channels, type(self).__name__)
        x = F.max_pool2d(F.relu(self.conv1(x)), kernel_size=2, stride=2)
        x = F.max_pool2d(F.relu(self.conv2(x)), kernel_size=2, stride=2)
        return _fit_map(x, self._map).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc1(self.features(x))
        return out

    def extra_repr(self) -> str:
        return (
            f"embedding_dim={self.embedding_dim}, in_channels={self.in_channels}, "
            f"input_size={self.input_size}"
        )


class C2F2(C2F1):
    """The C2F2 ranking network of the robustness benchmark (robrank, T-PAMI 2024).

    ``conv 1->32 5x5 -> ReLU -> max-pool 2x2 -> conv 32->64 5x5 -> ReLU -> max-pool 2x2
    -> fc 3136->1024 -> ReLU -> fc 1024->D`` (no activation on the embedding): C2F1 with
    one more fully-connected layer, the model behind the published Fashion-MNIST
    Empirical Robustness Scores.

    Parameters
    ----------
    embedding_dim : int, default 512
        Output dimension D.
    in_channels : int, default 1
        Input channels C.
    input_size : int, default 28
        The input side the first fully-connected layer is sized for (as
        [C2F1][rankattack.models.C2F1]).

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import C2F2
    >>> C2F2()(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 512])
    """

    def __init__(
        self, embedding_dim: int = 512, in_channels: int = 1, input_size: int = 28
    ) -> None:
        super().__init__(embedding_dim=1024, in_channels=in_channels, input_size=input_size)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", low=1)
        self.fc2 = nn.Linear(1024, self.embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(F.relu(self.fc1(self.features(x))))
        return out


class LeNet(nn.Module):
    """LeNet embedding network (the low-capacity model of the transfer study, Sec. 4.4).

    ``conv 1->20 5x5 -> ReLU -> max-pool -> conv 20->50 5x5 -> ReLU -> max-pool
    -> fc 2450->500 -> ReLU -> fc 500->D`` (Caffe's LeNet channel widths, "same"
    padding so that 28x28 inputs give a 7x7 map).

    Parameters
    ----------
    embedding_dim : int, default 128
        Output dimension D.
    in_channels : int, default 1

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import LeNet
    >>> LeNet()(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 128])
    """

    def __init__(self, embedding_dim: int = 128, in_channels: int = 1) -> None:
        super().__init__()
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", low=1)
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.conv1 = nn.Conv2d(self.in_channels, 20, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(50 * 7 * 7, 500)
        self.fc2 = nn.Linear(500, self.embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        _check_image_batch(x, self.in_channels, "LeNet")
        x = F.max_pool2d(F.relu(self.conv1(x)), kernel_size=2, stride=2)
        x = F.max_pool2d(F.relu(self.conv2(x)), kernel_size=2, stride=2)
        x = _fit_map(x, 7)
        out: Tensor = self.fc2(F.relu(self.fc1(x.flatten(1))))
        return out

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, in_channels={self.in_channels}"


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm and a shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al.) adapted to small inputs, as an embedding network.

    A 3x3 stride-1 stem (64 channels) without max-pooling, four stages of two basic
    blocks (64, 128, 256, 512 channels; strides 1, 2, 2, 2), global average pooling and
    a linear layer 512->D. Any input of at least 4x4 pixels works (global pooling).

    Parameters
    ----------
    embedding_dim : int, default 512
        Output dimension D.
    in_channels : int, default 1

    Notes
    -----
    Batch normalization makes the embedding of an input depend on its batch in train
    mode; the attacks and [rankattack.Gallery][] embed in eval mode.

    Examples
    --------
    >>> import torch
    >>> from rankattack.models import ResNet18
    >>> ResNet18(embedding_dim=8).eval()(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 8])
    """

    def __init__(self, embedding_dim: int = 512, in_channels: int = 1) -> None:
        super().__init__()
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", low=1)
        self.in_channels = check_int(in_channels, "in_channels", low=1)
        self.conv1 = nn.Conv2d(self.in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(
                nn.Sequential(
                    _BasicBlock(in_planes, planes, stride), _BasicBlock(planes, planes, 1)
                )
            )
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, self.embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        _check_image_batch(x, self.in_channels, "ResNet18")
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        out: Tensor = self.fc(x)
        return out

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, in_channels={self.in_channels}"


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "c2f1": C2F1,
    "c2f2": C2F2,
    "lenet": LeNet,
    "resnet18": ResNet18,
}

#: Names accepted by [build_model][rankattack.models.build_model].
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)


def build_model(name: str, embedding_dim: int | None = None, in_channels: int = 1) -> nn.Module:
    """Build a reference model by name.

    Parameters
    ----------
    name : {"c2f1", "c2f2", "lenet", "resnet18"}
        Case-insensitive model name.
    embedding_dim : int, optional
        Output dimension; default the model's own (1024, 512, 128, 512).
    in_channels : int, default 1

    Raises
    ------
    ValueError
        If ``name`` is not a known model.

    Examples
    --------
    >>> from rankattack.models import build_model
    >>> build_model("c2f1", embedding_dim=32).embedding_dim
    32
    """
    if not isinstance(name, str) or name.lower() not in _MODELS:
        raise ValueError(f"model name must be one of {list(MODEL_NAMES)}, got {name!r}")
    cls = _MODELS[name.lower()]
    if embedding_dim is None:
        return cls(in_channels=in_channels)
    return cls(embedding_dim=embedding_dim, in_channels=in_channels)
