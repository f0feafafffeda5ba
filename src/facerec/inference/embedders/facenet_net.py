"""FaceNet's Inception-ResNet-v1 (Szegedy et al. 2016; Schroff et al. 2015) in PyTorch.

Written to load the state dict that facenet-pytorch publishes (``20180402-114759-vggface2.pt``:
David Sandberg's TensorFlow weights trained on VGGFace2) with ``strict=True``: attribute names
follow that state dict (``conv2d_1a.conv.weight``, ``repeat_1.0.branch2.1.bn.running_var``,
``mixed_7a.branch3``, ``last_bn``, ``logits``); the code is ours. Only the converter
(:mod:`.convert_facenet`) imports it; the service runs the exported ONNX graph.

Shape for a 160x160 input: a stem of 3x3 convolutions and a max-pool down to 256 channels at
17x17; five Inception-ResNet-A blocks (residual scale 0.17); reduction A to 896 channels at 8x8;
ten Inception-ResNet-B blocks (0.10); reduction B to 1792 channels at 3x3; five
Inception-ResNet-C blocks (0.20) and a last one without ReLU; global average pooling, dropout, a
bias-free linear layer to 512 and BatchNorm1d; the embedding is that vector L2-normalised. The
classifier ``logits`` (8631 VGGFace2 identities) is part of the state dict, so it is declared,
but the embedding never uses it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

EMBEDDING_SIZE = 512
VGGFACE2_CLASSES = 8631
BN_EPS = 0.001  # TensorFlow's batch-norm epsilon, which the weights were trained with

Size = int | tuple[int, int]


class ConvBnRelu(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU; attribute names ``conv``, ``bn``."""

    def __init__(
        self, cin: int, cout: int, kernel: Size, stride: int = 1, padding: Size = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.bn(self.conv(x)))
        return out


def _chain(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Parallel branches, concatenated, a 1x1 conv back to the input width, scaled, added."""

    def __init__(self, width: int, branches: list[nn.Module], mixed: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.branch_count = len(branches)
        self.conv2d = nn.Conv2d(mixed, width, kernel_size=1)
        self.relu: nn.Module | None = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [getattr(self, f"branch{i}")(x) for i in range(self.branch_count)]
        out: torch.Tensor = self.conv2d(torch.cat(parts, 1)) * self.scale + x
        return self.relu(out) if self.relu is not None else out


def block35(scale: float) -> ResidualBlock:
    """Inception-ResNet-A on 256 channels (35x35 in the paper's 299 px network)."""
    return ResidualBlock(
        256,
        [
            ConvBnRelu(256, 32, 1),
            _chain(ConvBnRelu(256, 32, 1), ConvBnRelu(32, 32, 3, padding=1)),
            _chain(
                ConvBnRelu(256, 32, 1),
                ConvBnRelu(32, 32, 3, padding=1),
                ConvBnRelu(32, 32, 3, padding=1),
            ),
        ],
        mixed=96,
        scale=scale,
    )


def block17(scale: float) -> ResidualBlock:
    """Inception-ResNet-B on 896 channels, factorised 1x7 / 7x1 convolutions."""
    return ResidualBlock(
        896,
        [
            ConvBnRelu(896, 128, 1),
            _chain(
                ConvBnRelu(896, 128, 1),
                ConvBnRelu(128, 128, (1, 7), padding=(0, 3)),
                ConvBnRelu(128, 128, (7, 1), padding=(3, 0)),
            ),
        ],
        mixed=256,
        scale=scale,
    )


def block8(scale: float = 1.0, *, relu: bool = True) -> ResidualBlock:
    """Inception-ResNet-C on 1792 channels, factorised 1x3 / 3x1 convolutions."""
    block = ResidualBlock(
        1792,
        [
            ConvBnRelu(1792, 192, 1),
            _chain(
                ConvBnRelu(1792, 192, 1),
                ConvBnRelu(192, 192, (1, 3), padding=(0, 1)),
                ConvBnRelu(192, 192, (3, 1), padding=(1, 0)),
            ),
        ],
        mixed=384,
        scale=scale,
    )
    if not relu:
        block.relu = None
    return block


class Concat(nn.Module):
    """Parallel branches ``branch0..`` concatenated on channels (the reduction blocks)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.branch_count = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.branch_count)], 1)


def mixed_6a() -> Concat:
    """Reduction A: 256 → 384 + 256 + 256 = 896 channels, stride 2."""
    return Concat(
        ConvBnRelu(256, 384, 3, stride=2),
        _chain(
            ConvBnRelu(256, 192, 1),
            ConvBnRelu(192, 192, 3, padding=1),
            ConvBnRelu(192, 256, 3, stride=2),
        ),
        nn.MaxPool2d(3, stride=2),
    )


def mixed_7a() -> Concat:
    """Reduction B: 896 → 384 + 256 + 256 + 896 = 1792 channels, stride 2."""
    return Concat(
        _chain(ConvBnRelu(896, 256, 1), ConvBnRelu(256, 384, 3, stride=2)),
        _chain(ConvBnRelu(896, 256, 1), ConvBnRelu(256, 256, 3, stride=2)),
        _chain(
            ConvBnRelu(896, 256, 1),
            ConvBnRelu(256, 256, 3, padding=1),
            ConvBnRelu(256, 256, 3, stride=2),
        ),
        nn.MaxPool2d(3, stride=2),
    )


class InceptionResnetV1(nn.Module):
    """Input (N, 3, 160, 160), (RGB - 127.5) / 128; output (N, 512) unit vectors."""

    def __init__(self, num_classes: int = VGGFACE2_CLASSES) -> None:
        super().__init__()
        self.conv2d_1a = ConvBnRelu(3, 32, 3, stride=2)
        self.conv2d_2a = ConvBnRelu(32, 32, 3)
        self.conv2d_2b = ConvBnRelu(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = ConvBnRelu(64, 80, 1)
        self.conv2d_4a = ConvBnRelu(80, 192, 3)
        self.conv2d_4b = ConvBnRelu(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(block35(0.17) for _ in range(5)))
        self.mixed_6a = mixed_6a()
        self.repeat_2 = nn.Sequential(*(block17(0.10) for _ in range(10)))
        self.mixed_7a = mixed_7a()
        self.repeat_3 = nn.Sequential(*(block8(0.20) for _ in range(5)))
        self.block8 = block8(relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.6)
        self.last_linear = nn.Linear(1792, EMBEDDING_SIZE, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING_SIZE, eps=BN_EPS, momentum=0.1)
        self.logits = nn.Linear(EMBEDDING_SIZE, num_classes)  # training only; in the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (
            self.conv2d_1a,
            self.conv2d_2a,
            self.conv2d_2b,
            self.maxpool_3a,
            self.conv2d_3b,
            self.conv2d_4a,
            self.conv2d_4b,
            self.repeat_1,
            self.mixed_6a,
            self.repeat_2,
            self.mixed_7a,
            self.repeat_3,
            self.block8,
            self.avgpool_1a,
            self.dropout,
        ):
            x = stage(x)
        x = self.last_bn(self.last_linear(x.flatten(1)))
        out: torch.Tensor = functional.normalize(x, p=2.0, dim=1)
        return out
