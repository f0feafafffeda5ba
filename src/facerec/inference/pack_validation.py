"""Checks on model-pack files: an ONNX graph against its catalogue entry, and installed packs
against their manifests.

``check_graph`` runs before ``facerec models import|pull`` installs a graph: the input (name and
[N,3,S,S] for embedders) and outputs the entry declares (``ModelEntry.graph_signature``: an
embedder's is derived from its :class:`~facerec.inference.catalogue.EmbedderSpec`, a detector
declares its heads or nothing), then, where the input is fully known, one run on zeros to see the
output's real size. ``verify_pack`` (``facerec models verify``) re-hashes every installed file
against the SHA-256 its manifest recorded and, for a known file, the catalogue's pinned one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facerec.errors import ModelLoadError
from facerec.inference.catalogue import GraphSignature, ModelEntry, TensorSignature
from facerec.inference.downloads import sha256_file

MANIFEST_NAME = "manifest.json"
Dim = int | str | None  # a fixed size, a symbolic name, or unknown


class GraphMismatchError(ModelLoadError):
    """The file is not an ONNX graph of the pack's family."""

    default_code = "graph_mismatch"


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class GraphReport:
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    checked_output_dim: int | None  # the size a test run returned per face, if one ran


def _tensors(values: Any) -> tuple[Tensor, ...]:
    result = []
    for value in values:
        dims: list[Dim] = []
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
        result.append(Tensor(value.name, tuple(dims)))
    return tuple(result)


def _pick(tensors: tuple[Tensor, ...], want: TensorSignature, kind: str, model: str) -> Tensor:
    if not tensors:
        raise GraphMismatchError(f"the graph has no {kind}", model=model)
    if want.name is None:
        return tensors[0]
    for tensor in tensors:
        if tensor.name == want.name:
            return tensor
    raise GraphMismatchError(
        f"the graph has no {kind} {want.name!r} (it has {[t.name for t in tensors]}): "
        f"not a {model} graph",
        model=model,
    )


def _shape_fits(got: tuple[Dim, ...], want: tuple[int | None, ...]) -> bool:
    """Same rank, and every fixed size the signature names is the graph's (or symbolic there)."""
    if len(got) != len(want):
        return False
    return all(
        w is None or not isinstance(g, int) or g == w for g, w in zip(got, want, strict=True)
    )


def _describe(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


def check_graph(path: Path, entry: ModelEntry, *, run: bool = True) -> GraphReport:
    """Refuse (:class:`GraphMismatchError`) a file that is not a graph of ``entry``'s family."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise GraphMismatchError(
            f"{path.name} is not an ONNX graph: {exc}", model=entry.name
        ) from exc
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(t for t in _tensors(graph.input) if t.name not in initializers)
    outputs = _tensors(graph.output)
    report = GraphReport(inputs, outputs, None)
    signature = entry.graph_signature()
    if signature is None:
        return report
    _check_static(signature, inputs, outputs, entry.name)
    if run and signature.input is not None and signature.output is not None:
        report = GraphReport(inputs, outputs, _test_run(path, signature, inputs, entry.name))
    return report


def _check_static(
    signature: GraphSignature,
    inputs: tuple[Tensor, ...],
    outputs: tuple[Tensor, ...],
    model: str,
) -> None:
    if signature.input is not None:
        tensor = _pick(inputs, signature.input, "input", model)
        if signature.input.shape is not None and not _shape_fits(
            tensor.shape, signature.input.shape
        ):
            raise GraphMismatchError(
                f"input {tensor.name!r} has shape {list(tensor.shape)}, the {model} family "
                f"takes {_describe(signature.input.shape)}",
                model=model,
            )
    if signature.output is not None:
        tensor = _pick(outputs, signature.output, "output", model)
        want = signature.output.shape
        if want is not None and not _output_fits(tensor.shape, want):
            raise GraphMismatchError(
                f"output {tensor.name!r} has shape {list(tensor.shape)}, the {model} family "
                f"returns {_describe(want)}",
                model=model,
            )
    names = {t.name for t in outputs}
    missing = [name for name in signature.output_names if name not in names]
    if missing:
        raise GraphMismatchError(
            f"the graph lacks the outputs {missing} of the {model} family", model=model
        )
    if signature.output_count is not None and len(outputs) != signature.output_count:
        raise GraphMismatchError(
            f"the graph has {len(outputs)} outputs, the {model} family has "
            f"{signature.output_count}",
            model=model,
        )


def _output_fits(got: tuple[Dim, ...], want: tuple[int | None, ...]) -> bool:
    """[N, D] also matches [N, D, 1, 1] (a graph that ends in a 1x1 conv): same values per row."""
    if _shape_fits(got, want):
        return True
    if len(got) <= len(want) or got[len(want) :] != (1,) * (len(got) - len(want)):
        return False
    return _shape_fits(got[: len(want)], want)


def _test_run(
    path: Path, signature: GraphSignature, inputs: tuple[Tensor, ...], model: str
) -> int | None:
    """Run the graph once on zeros: the output's real size per row (catches symbolic dims)."""
    assert signature.input is not None and signature.output is not None
    tensor = _pick(inputs, signature.input, "input", model)
    want_in = signature.input.shape or ()
    dims = [
        g if isinstance(g, int) and g > 0 else (w if w is not None else 1)
        for g, w in zip(tensor.shape, want_in, strict=False)
    ]
    if len(inputs) != 1 or len(dims) != len(tensor.shape):
        return None  # more than one input to feed, or an input rank we cannot fill
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out_name = signature.output.name or session.get_outputs()[0].name
        (output,) = session.run([out_name], {tensor.name: np.zeros(dims, dtype=np.float32)})
    except Exception as exc:  # onnxruntime raises its own exception types
        raise GraphMismatchError(
            f"the graph does not run on a {dims} input: {exc}", model=model
        ) from exc
    array = np.asarray(output)
    per_row = math.prod(array.shape[1:]) if array.ndim > 1 else 0
    want_out = signature.output.shape
    fixed = want_out is not None and len(want_out) == 2 and want_out[1] is not None
    if want_out is not None and fixed and (array.shape[:1] != (dims[0],) or per_row != want_out[1]):
        raise GraphMismatchError(
            f"the graph returned shape {list(array.shape)} for a batch of {dims[0]}, "
            f"the {model} family returns {_describe(want_out)}",
            model=model,
        )
    return per_row


# --- installed packs ---

FileState = Literal["ok", "modified", "missing"]


@dataclass(frozen=True)
class FileCheck:
    file: str
    state: FileState
    detail: str = ""


@dataclass(frozen=True)
class PackCheck:
    pack: str
    files: tuple[FileCheck, ...]
    problem: str = ""  # a pack folder without a (readable) manifest

    @property
    def ok(self) -> bool:
        return not self.problem and all(f.state == "ok" for f in self.files)


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    path = pack_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def manifest_files(manifest: dict[str, Any]) -> dict[str, str]:
    """File name → SHA-256 recorded at install, for every file the manifest lists."""
    files: dict[str, str] = {}
    installed = manifest.get("installed")
    if isinstance(installed, dict) and installed.get("file") and installed.get("sha256"):
        files[str(installed["file"])] = str(installed["sha256"])
    for report in manifest.get("converted") or []:
        if isinstance(report, dict) and report.get("onnx_path") and report.get("onnx_sha256"):
            files[Path(str(report["onnx_path"])).name] = str(report["onnx_sha256"])
    return files


def verify_pack(entry: ModelEntry, pack_dir: Path) -> PackCheck | None:
    """The state of an installed pack's files; None when the pack is not installed at all."""
    if not pack_dir.is_dir():
        return None
    try:
        manifest = read_manifest(pack_dir)
    except (ValueError, OSError) as exc:
        return PackCheck(entry.name, (), f"unreadable {MANIFEST_NAME}: {exc}")
    recorded = manifest_files(manifest)
    if not recorded:
        if not any(p.name != MANIFEST_NAME for p in pack_dir.iterdir()):
            return None  # an empty folder: nothing installed
        return PackCheck(entry.name, (), f"no {MANIFEST_NAME} lists the files in {pack_dir}")
    known = manifest.get("installed", {}).get("known_file")
    checks = []
    for name, sha in sorted(recorded.items()):
        path = pack_dir / name
        if not path.is_file():
            checks.append(FileCheck(name, "missing"))
            continue
        actual = sha256_file(path)
        pinned = next((f.sha256 for f in entry.files if f.name == known and f.pinned), None)
        if actual != sha:
            checks.append(FileCheck(name, "modified", f"SHA-256 {actual}, recorded {sha}"))
        elif pinned is not None and actual != pinned:
            checks.append(FileCheck(name, "modified", f"not the pinned {known} ({pinned})"))
        else:
            checks.append(FileCheck(name, "ok", actual))
    return PackCheck(entry.name, tuple(checks))
