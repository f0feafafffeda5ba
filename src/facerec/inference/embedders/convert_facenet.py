"""FaceNet's PyTorch state dict (facenet-pytorch ``20180402-114759-vggface2.pt``) → ONNX.

The state dict is loaded strictly (every key and shape must match :mod:`.facenet_net`; only a
``module.`` prefix from ``DataParallel`` is removed), exported with a dynamic batch
(``input`` [N,3,160,160] → ``embedding`` [N,512], unit vectors), and the export is refused unless
onnxruntime agrees with PyTorch on a few deterministic inputs. The output file appears only once
it passed. ``facerec models pull|import facenet`` run this (needs ``pip install
'facerec[convert]'``); the service only loads the ONNX graph.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.inference.downloads import sha256_file
from facerec.inference.liveness.convert import (
    ConversionError,
    ConverterMissingError,
    export_verified,
)

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
INPUT_SIZE = 160
# onnxruntime vs PyTorch, max |Δ| between the unit vectors beyond which the export is refused.
DEFAULT_TOLERANCE = 1e-4
TORCH_HINT = "pip install 'facerec[convert]' (torch==2.13.0)"


@dataclass(frozen=True)
class FacenetReport:
    source: str
    source_sha256: str
    onnx_path: str
    onnx_sha256: str
    opset: int
    samples: int
    max_abs_diff: float  # embeddings, onnxruntime vs torch, over all samples
    torch_version: str

    def summary(self) -> str:
        return (
            f"InceptionResnetV1: {Path(self.source).name} → {Path(self.onnx_path).name} "
            f"(opset {self.opset}, {self.samples} samples, max |Δ| {self.max_abs_diff:.2e})"
        )


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise ConverterMissingError(
            f"converting FaceNet weights needs PyTorch: {TORCH_HINT}"
        ) from exc
    return torch


def load_facenet(pt_path: Path) -> Any:
    """The network in eval mode with the state dict loaded strictly."""
    torch = require_torch()
    from facerec.inference.embedders.facenet_net import InceptionResnetV1

    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike: not a usable state dict
        raise ConversionError(f"cannot read {pt_path.name} as a PyTorch state dict: {exc}") from exc
    if not isinstance(state, Mapping):
        raise ConversionError(f"{pt_path.name} holds a {type(state).__name__}, not a state dict")
    cleaned = {str(key).removeprefix("module."): value for key, value in state.items()}
    net = InceptionResnetV1()
    try:
        net.load_state_dict(cleaned, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches, all listed
        raise ConversionError(
            f"{pt_path.name} is not FaceNet's InceptionResnetV1 (VGGFace2) state dict: {exc}"
        ) from exc
    net.eval()
    return net


def default_samples(count: int = 3) -> NDArray[np.float32]:
    """Deterministic check inputs in the network's range ((x - 127.5) / 128): noise and grey."""
    rng = np.random.default_rng(20180402)
    noise = rng.uniform(-1.0, 1.0, size=(count - 1, 3, INPUT_SIZE, INPUT_SIZE))
    grey = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE))
    return np.concatenate([noise, grey]).astype(np.float32)


def convert_facenet(
    pt_path: Path,
    out_onnx_path: Path,
    *,
    opset: int = OPSET,
    sample_inputs: NDArray[np.float32] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> FacenetReport:
    torch = require_torch()

    pt_path, out_onnx_path = Path(pt_path), Path(out_onnx_path)
    net = load_facenet(pt_path)
    samples = default_samples() if sample_inputs is None else sample_inputs
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    source_sha = sha256_file(pt_path)
    partial = out_onnx_path.with_name(out_onnx_path.name + ".partial")
    try:
        _, _, diff = export_verified(
            net,
            partial,
            samples,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            opset=opset,
            metadata={
                "facerec.network": "InceptionResnetV1 (facenet-pytorch layout)",
                "facerec.input": f"RGB (x-127.5)/128, Nx3x{INPUT_SIZE}x{INPUT_SIZE}",
                "facerec.source_sha256": source_sha,
            },
            label="FaceNet",
            tolerance=tolerance,
        )
        os.replace(partial, out_onnx_path)
    finally:
        partial.unlink(missing_ok=True)

    report = FacenetReport(
        source=str(pt_path),
        source_sha256=source_sha,
        onnx_path=str(out_onnx_path),
        onnx_sha256=sha256_file(out_onnx_path),
        opset=opset,
        samples=int(samples.shape[0]),
        max_abs_diff=diff,
        torch_version=str(torch.__version__),
    )
    logger.info("converted %s", report.summary())
    return report
