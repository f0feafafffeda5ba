"""The batch dimension freed on an ONNX file's bytes: the very bytes the ``onnx`` package's edit
gives, without importing ``onnx`` (1.2-1.5 s at every start of an embedder that needs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from facerec.errors import ModelLoadError
from facerec.inference import catalogue
from facerec.inference.embedders.onnx_embedder import free_batch_dimension
from facerec.inference.onnx_graph import OnnxFormatError, free_first_dimension

W600K = "arcface/w600k_mbf_fp32_from_int8.onnx"


def onnx_edit(model: bytes, input_name: str | None, output_name: str | None) -> bytes:
    """What the service did before, with the ``onnx`` package."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    names = {input_name or graph.input[0].name, output_name or graph.output[0].name}
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name in names and len(dims) > 0:
            dims[0].dim_param = "N"
    del graph.value_info[:]
    data: bytes = proto.SerializeToString()
    return data


def small_model(first_dim: int | str, denotation: str = "") -> bytes:
    """Two inputs (a scale and the image), a value_info entry, and a declared first dim."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [first_dim, 3, 4, 4])
    if denotation:
        image.type.tensor_type.shape.dim[0].denotation = denotation
    scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [first_dim, 3, 4, 4])
    nodes = [
        helper.make_node("Mul", ["image", "scale"], ["scaled"]),
        helper.make_node("Relu", ["scaled"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [scale, image],
        [out],
        value_info=[helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


@pytest.mark.parametrize(
    ("first_dim", "denotation", "names"),
    [
        (1, "", ("image", "out")),
        (1, "DATA_BATCH", ("image", "out")),
        ("batch", "", ("image", None)),
        (1, "", (None, None)),  # the first input is ``scale``: it is the one freed then
    ],
)
def test_the_edit_is_the_onnx_packages_byte_for_byte(
    first_dim: int | str, denotation: str, names: tuple[str | None, str | None]
) -> None:
    model = small_model(first_dim, denotation)
    ours = free_first_dimension(model, *names)
    assert ours == onnx_edit(model, *names)
    assert not onnx.load_from_string(ours).graph.value_info


def test_a_freed_graph_runs_any_batch() -> None:
    session = ort.InferenceSession(
        free_first_dimension(small_model(1), "image", "out"), providers=["CPUExecutionProvider"]
    )
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["image"] == ["N", 3, 4, 4] and shapes["scale"] == [1]
    batch = np.arange(3 * 48, dtype=np.float32).reshape(3, 3, 4, 4) - 70
    (out,) = session.run(None, {"image": batch, "scale": np.array([2.0], np.float32)})
    np.testing.assert_array_equal(out, np.maximum(batch * 2, 0))


def test_w600k_mbf_is_freed_as_before(shared_models: Path) -> None:
    spec = catalogue.get("w600k_mbf").embedder
    assert spec is not None and spec.any_batch
    path = shared_models / W600K
    ours = free_batch_dimension(path, spec)
    assert ours == onnx_edit(path.read_bytes(), spec.input_name, spec.output_name)
    session = ort.InferenceSession(ours, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["N", 3, 112, 112]
    assert session.get_outputs()[0].shape == ["N", 512]


def test_a_file_that_is_no_onnx_model_is_a_load_error(tmp_path: Path) -> None:
    spec = catalogue.get("w600k_mbf").embedder
    assert spec is not None
    for junk in (b"\xff\xff\xff", small_model(1)[:-7], b""):
        path = tmp_path / "broken.onnx"
        path.write_bytes(junk)
        with pytest.raises(ModelLoadError):
            free_batch_dimension(path, spec)
    with pytest.raises(OnnxFormatError):
        free_first_dimension(b"\x0a\xff", None, None)


def test_loading_an_embedder_graph_does_not_import_onnx(shared_models: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from facerec.inference import catalogue\n"
        "from facerec.inference.embedders.onnx_embedder import free_batch_dimension\n"
        f"free_batch_dimension(Path({str(shared_models / W600K)!r}), "
        "catalogue.get('w600k_mbf').embedder)\n"
        "assert 'onnx' not in sys.modules, 'onnx was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
