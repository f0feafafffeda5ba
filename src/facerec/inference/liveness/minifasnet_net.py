"""The MiniFASNet network (Minivision's Silent-Face-Anti-Spoofing, Apache-2.0) in PyTorch.

Only the converter imports this module: the service runs the exported ONNX graph and never
imports torch. Attribute names follow the published state dicts (``conv1.conv.weight``,
``conv_3.model.0.conv_dw.bn.running_mean``, ...) so the upstream weights load with
``strict=True``; the class names are ours.

Shape of the network (80x80 input): a 3x3/2 stem, a depthwise 3x3, then three stages of
inverted-residual bottlenecks (expand 1x1 → depthwise 3x3 → project 1x1) at 20, 10 and 5 pixels,
each entered through a stride-2 bottleneck without shortcut. The SE variants put a
squeeze-excitation gate (reduction 4) on the last bottleneck of each stage. A 1x1 conv to 512
channels, a depthwise conv over the whole 5x5 map, a linear layer to 128, BatchNorm1d and a
linear classifier give 3 logits (class 1 = live). Channel widths come from pruning and differ per
variant: :data:`CHANNELS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Pruned channel widths, in the order the layers consume them (upstream ``keep_dict``):
# V1 and V1SE use "1.8M", V2 and V2SE use "1.8M_".
CHANNELS: dict[str, tuple[int, ...]] = {
    "1.8M": (
        32, 32, 103, 103, 64, 13, 13, 64, 26, 26, 64, 13, 13, 64, 52, 52, 64,
        231, 231, 128, 154, 154, 128, 52, 52, 128, 26, 26, 128, 52, 52, 128, 26, 26, 128,
        26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128, 512, 512,
    ),
    "1.8M_": (
        32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64,
        231, 231, 128, 231, 231, 128, 52, 52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128,
        26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128, 512, 512,
    ),
}  # fmt: skip

# variant → (channel table, squeeze-excitation on the last block of each stage)
VARIANTS: dict[str, tuple[str, bool]] = {
    "MiniFASNetV1": ("1.8M", False),
    "MiniFASNetV2": ("1.8M_", False),
    "MiniFASNetV1SE": ("1.8M", True),
    "MiniFASNetV2SE": ("1.8M_", True),
}

EMBEDDING_SIZE = 128
NUM_CLASSES = 3
SE_REDUCTION = 4


def head_kernel(input_size: int) -> int:
    """Side of the final depthwise kernel: the feature map after four stride-2 steps."""
    return (input_size + 15) // 16


class ConvBnPrelu(nn.Module):
    """Conv (no bias) → BatchNorm → PReLU; attribute names ``conv``, ``bn``, ``prelu``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.prelu(self.bn(self.conv(x)))
        return out


class ConvBn(nn.Module):
    """Conv (no bias) → BatchNorm, no activation (the linear projection of a bottleneck)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(self.conv(x))
        return out


class SqueezeExcite(nn.Module):
    """Channel gate: global average → 1x1 reduce → BN → ReLU → 1x1 expand → BN → sigmoid."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)
        gate = torch.relu(self.bn1(self.fc1(gate)))
        gate = torch.sigmoid(self.bn2(self.fc2(gate)))
        return x * gate


class Bottleneck(nn.Module):
    """Expand 1x1 → depthwise 3x3 → project 1x1, with an identity shortcut when ``residual``.

    ``widths`` is (input, expanded, projected-out). With ``se`` the projection is gated by a
    squeeze-excitation module before the shortcut is added.
    """

    def __init__(
        self, widths: tuple[int, int, int], *, stride: int, residual: bool, se: bool = False
    ) -> None:
        super().__init__()
        c_in, c_mid, c_out = widths
        self.conv = ConvBnPrelu(c_in, c_mid)
        self.conv_dw = ConvBnPrelu(c_mid, c_mid, kernel=3, stride=stride, padding=1, groups=c_mid)
        self.project = ConvBn(c_mid, c_out)
        self.residual = residual
        self.se_module: SqueezeExcite | None = SqueezeExcite(c_out, SE_REDUCTION) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            out = self.se_module(out)
        return x + out if self.residual else out


class Stage(nn.Module):
    """Stride-1 residual bottlenecks, kept in ``model`` (the state dicts' ``conv_3.model.N``)."""

    def __init__(self, blocks: Sequence[tuple[int, int, int]], *, se_last: bool) -> None:
        super().__init__()
        last = len(blocks) - 1
        self.model = nn.Sequential(
            *(
                Bottleneck(widths, stride=1, residual=True, se=se_last and i == last)
                for i, widths in enumerate(blocks)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        return out


def _stage_widths(keep: Sequence[int], start: int, blocks: int) -> list[tuple[int, int, int]]:
    """Bottleneck widths of a stage whose input width is ``keep[start]``.

    Each block uses three table entries: expanded, expanded (depthwise out) and projected out;
    the projected width is the next block's input.
    """
    widths = []
    for i in range(blocks):
        base = start + 3 * i
        widths.append((keep[base], keep[base + 1], keep[base + 3]))
    return widths


class MiniFASNet(nn.Module):
    """MiniFASNet V1/V2/V1SE/V2SE for a square ``input_size`` crop; outputs 3 logits."""

    def __init__(self, variant: str, input_size: int = 80) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MiniFASNet variant {variant!r}; known: {sorted(VARIANTS)}")
        table, se = VARIANTS[variant]
        keep = CHANNELS[table]
        self.variant = variant
        self.conv1 = ConvBnPrelu(3, keep[0], kernel=3, stride=2, padding=1)
        self.conv2_dw = ConvBnPrelu(keep[0], keep[1], kernel=3, padding=1, groups=keep[1])
        self.conv_23 = Bottleneck((keep[1], keep[2], keep[4]), stride=2, residual=False)
        self.conv_3 = Stage(_stage_widths(keep, 4, 4), se_last=se)
        self.conv_34 = Bottleneck((keep[16], keep[17], keep[19]), stride=2, residual=False)
        self.conv_4 = Stage(_stage_widths(keep, 19, 6), se_last=se)
        self.conv_45 = Bottleneck((keep[37], keep[38], keep[40]), stride=2, residual=False)
        self.conv_5 = Stage(_stage_widths(keep, 40, 2), se_last=se)
        self.conv_6_sep = ConvBnPrelu(keep[46], keep[47])
        self.conv_6_dw = ConvBn(keep[47], keep[48], kernel=head_kernel(input_size), groups=keep[48])
        self.linear = nn.Linear(keep[48], EMBEDDING_SIZE, bias=False)
        self.bn = nn.BatchNorm1d(EMBEDDING_SIZE)
        self.prob = nn.Linear(EMBEDDING_SIZE, NUM_CLASSES, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float BGR in 0..255 → (B, 3) logits. Dropout is omitted: eval only."""
        out = self.conv2_dw(self.conv1(x))
        out = self.conv_3(self.conv_23(out))
        out = self.conv_4(self.conv_34(out))
        out = self.conv_5(self.conv_45(out))
        out = self.conv_6_dw(self.conv_6_sep(out))
        out = torch.flatten(out, 1)
        logits: torch.Tensor = self.prob(self.bn(self.linear(out)))
        return logits
