"""MiniFASNet PyTorch state dicts → ONNX, checked against PyTorch before they are installed.

``convert_minifasnet`` converts one file; the pack of them (checksums, download, manifest) is
:mod:`.minifasnet_pack`. :func:`export_verified`, the export and its check against PyTorch, is
shared with the FaceNet converter.

State-dict keys, handled explicitly (everything else must match the network, ``strict=True``):

- ``module.`` prefixes (upstream trained under ``DataParallel``) are removed;
- a ``MultiFTNet`` training checkpoint nests the classifier under ``model.`` (removed) and adds
  ``FTGenerator.*``, the auxiliary Fourier-spectrum head used only as a training loss: those keys
  are dropped and listed in :attr:`ConvertReport.ignored_keys`. The published files have none.

Only this module and :mod:`.minifasnet_net` import torch, and only inside functions here, so the
CLI can import this module without it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facerec.errors import FaceRecError, ModelLoadError
from facerec.inference.base import RuntimeOptions, onnx_session
from facerec.inference.downloads import sha256_file
from facerec.inference.liveness.minifasnet import softmax

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# ONNX Runtime vs PyTorch, max |Δ logit| beyond which the export is refused (measured ~2e-6).
DEFAULT_TOLERANCE = 1e-3
TORCH_HINT = "pip install 'facerec[convert]' (torch==2.13.0)"


class ConverterMissingError(FaceRecError):
    """PyTorch (only needed to convert, never to serve) is not installed."""

    default_code = "converter_missing"


class ConversionError(ModelLoadError):
    """The weights do not fit the network, or the ONNX graph disagrees with PyTorch."""

    default_code = "conversion_failed"


@dataclass(frozen=True)
class ConvertReport:
    variant: str
    source: str
    source_sha256: str
    onnx_path: str
    onnx_sha256: str
    opset: int
    ignored_keys: tuple[str, ...]
    samples: int
    max_abs_diff: float  # logits, onnxruntime vs torch, over all samples
    max_prob_diff: float  # softmax, same samples
    torch_version: str

    def summary(self) -> str:
        ignored = (
            f", ignored {len(self.ignored_keys)} FTGenerator keys" if self.ignored_keys else ""
        )
        return (
            f"{self.variant}: {Path(self.source).name} → {Path(self.onnx_path).name} "
            f"(opset {self.opset}, {self.samples} samples, max |Δlogit| {self.max_abs_diff:.2e}"
            f"{ignored})"
        )


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise ConverterMissingError(
            f"converting MiniFASNet weights needs PyTorch: {TORCH_HINT}"
        ) from exc
    return torch


def clean_state_dict(state: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keys as the network names them, and the training-only keys that were dropped."""
    cleaned: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name.startswith("FTGenerator."):
            ignored.append(key)
            continue
        cleaned[name.removeprefix("model.")] = value
    return cleaned, tuple(ignored)


def load_network(pth_path: Path, variant: str, input_size: int = 80) -> tuple[Any, tuple[str, ...]]:
    """The network in eval mode with the weights loaded strictly, and the ignored keys."""
    torch = require_torch()
    from facerec.inference.liveness.minifasnet_net import MiniFASNet

    try:
        state = torch.load(pth_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike: not a usable state dict
        raise ConversionError(
            f"cannot read {pth_path.name} as a PyTorch state dict: {exc}"
        ) from exc
    if not isinstance(state, Mapping):
        raise ConversionError(f"{pth_path.name} holds a {type(state).__name__}, not a state dict")
    cleaned, ignored = clean_state_dict(state)
    net = MiniFASNet(variant, input_size)
    try:
        net.load_state_dict(cleaned, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatches, all listed
        raise ConversionError(
            f"{pth_path.name} does not match {variant}: {exc}", variant=variant
        ) from exc
    net.eval()
    return net, ignored


def default_samples(input_size: int = 80, count: int = 4) -> NDArray[np.float32]:
    """Deterministic check inputs in the network's range (BGR 0..255): noise and flat grey."""
    rng = np.random.default_rng(20240601)
    noise = rng.uniform(0.0, 255.0, size=(count - 1, 3, input_size, input_size))
    grey = np.full((1, 3, input_size, input_size), 128.0)
    return np.concatenate([noise, grey]).astype(np.float32)


def export_verified(
    net: Any,
    partial: Path,
    samples: NDArray[np.float32],
    *,
    input_name: str,
    output_name: str,
    opset: int,
    metadata: Mapping[str, str],
    label: str,
    tolerance: float,
) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
    """Export a loaded PyTorch ``net`` to ``partial`` (dynamic batch), record ``metadata`` in
    the graph and check it, then run onnxruntime and torch on ``samples`` (whole batch and the
    first alone) and raise :class:`ConversionError` when they differ by more than
    ``tolerance``. Returns (onnx outputs, torch outputs, the largest absolute difference)."""
    torch = require_torch()
    import onnx

    size = int(samples.shape[-1])
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not a dependency); it is still the supported path in torch 2.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            str(partial),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(partial))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(partial))

    with torch.no_grad():
        expected = np.asarray(net(torch.from_numpy(samples)).numpy(), dtype=np.float32)
    session = onnx_session(partial, RuntimeOptions())
    got = np.asarray(session.run(None, {input_name: samples})[0], dtype=np.float32)
    single = session.run(None, {input_name: samples[:1]})[0]
    diff = float(max(np.abs(got - expected).max(), np.abs(single - expected[:1]).max()))
    if not diff <= tolerance:
        raise ConversionError(
            f"{label}: ONNX output differs from PyTorch by {diff:.3g} (> {tolerance})",
            variant=label,
            max_abs_diff=diff,
        )
    return got, expected, diff


def convert_minifasnet(
    pth_path: Path,
    out_onnx_path: Path,
    variant: str,
    *,
    input_size: int = 80,
    opset: int = OPSET,
    sample_inputs: NDArray[np.float32] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ConvertReport:
    """Strict-load ``pth_path`` into ``variant``, export ONNX with a dynamic batch, then run
    onnxruntime and torch on ``sample_inputs`` (N, 3, S, S float BGR 0..255; default
    :func:`default_samples`) and refuse the export if the logits differ by more than
    ``tolerance``. ``out_onnx_path`` appears only once it passed."""
    if opset < OPSET:
        raise ValueError(f"opset must be ≥ {OPSET}")
    torch = require_torch()

    pth_path, out_onnx_path = Path(pth_path), Path(out_onnx_path)
    net, ignored = load_network(pth_path, variant, input_size)
    samples = default_samples(input_size) if sample_inputs is None else sample_inputs
    samples = np.ascontiguousarray(samples, dtype=np.float32)

    out_onnx_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_onnx_path.with_name(out_onnx_path.name + ".partial")
    try:
        got, expected, diff = export_verified(
            net,
            partial,
            samples,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            opset=opset,
            metadata={
                "facerec.variant": variant,
                "facerec.input": f"BGR float 0..255, 1x3x{input_size}x{input_size}, dynamic batch",
                "facerec.source_sha256": sha256_file(pth_path),
            },
            label=variant,
            tolerance=tolerance,
        )
        prob_diff = float(np.abs(softmax(got) - softmax(expected)).max())
        os.replace(partial, out_onnx_path)
    finally:
        partial.unlink(missing_ok=True)

    report = ConvertReport(
        variant=variant,
        source=str(pth_path),
        source_sha256=sha256_file(pth_path),
        onnx_path=str(out_onnx_path),
        onnx_sha256=sha256_file(out_onnx_path),
        opset=opset,
        ignored_keys=ignored,
        samples=int(samples.shape[0]),
        max_abs_diff=diff,
        max_prob_diff=prob_diff,
        torch_version=str(torch.__version__),
    )
    logger.info("converted %s", report.summary())
    return report
