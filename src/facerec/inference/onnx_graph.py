"""Edits of an ONNX file's graph made on its protobuf wire format, without the ``onnx`` package.

Importing ``onnx`` takes 1.2-1.5 s here, and loading an embedder whose graph declares batch 1
but runs any batch (w600k_mbf) needs one edit: its input's and output's first dimension made
symbolic. That edit is a few fields deep in the message, so it is made here on the bytes:

    ModelProto.graph (7) -> GraphProto.input (11) / .output (12) -> ValueInfoProto.name (1),
    .type (2) -> TypeProto.tensor_type (1) -> Tensor.shape (2) -> TensorShapeProto.dim (1)
    -> Dimension.dim_value (1) | .dim_param (2)

and ``GraphProto.value_info`` (13, the intermediate shapes inferred for batch 1) is dropped, to be
inferred again when onnxruntime loads the graph. Every other byte is copied as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

# Wire types (the protobuf encoding): varint, 64-bit, length-delimited, 32-bit.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_FIXED = {_I64: 8, _I32: 4}

# Field numbers of onnx.proto's messages used here.
_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 11, 12, 13
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2

# A field's payload edited: new bytes, or None to drop the field.
Edit = Callable[[bytes], bytes | None]


class OnnxFormatError(ValueError):
    """The bytes are not a protobuf message this module can read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxFormatError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(field number, wire type, payload of a length-delimited field or b"", the whole field)."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        payload = b""
        if wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire == _LEN:
            size, pos = _varint(data, pos)
            payload = data[pos : pos + size]
            if len(payload) != size:
                raise OnnxFormatError("truncated field")
            pos += size
        elif wire in _FIXED:
            pos += _FIXED[wire]
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise OnnxFormatError("truncated field")
        yield number, wire, payload, data[start:pos]


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LEN) + _encode_varint(len(payload)) + payload


def _edited(data: bytes, edits: dict[int, Edit]) -> bytes:
    """``data`` with the payload of each length-delimited field in ``edits`` replaced."""
    out = []
    for number, wire, payload, whole in _fields(data):
        edit = edits.get(number) if wire == _LEN else None
        if edit is None:
            out.append(whole)
        elif (new := edit(payload)) is not None:
            out.append(_field(number, new))
    return b"".join(out)


def _first(data: bytes, number: int) -> bytes | None:
    return next((p for n, w, p, _ in _fields(data) if n == number and w == _LEN), None)


def _symbolic_first_dim(shape: bytes) -> bytes:
    """A TensorShapeProto whose first dim is ``dim_param: "N"`` (its denotation kept)."""
    done = False

    def dim(payload: bytes) -> bytes:
        nonlocal done
        if done:
            return payload
        done = True
        kept = (w for n, _, _, w in _fields(payload) if n not in (_DIM_VALUE, _DIM_PARAM))
        return _field(_DIM_PARAM, b"N") + b"".join(kept)

    return _edited(shape, {_SHAPE_DIM: dim})


def _tensor(tensor: bytes) -> bytes:
    return _edited(tensor, {_TENSOR_SHAPE: _symbolic_first_dim})


def _type(type_proto: bytes) -> bytes:
    return _edited(type_proto, {_TYPE_TENSOR: _tensor})


def _value_with_free_batch(names: set[str]) -> Edit:
    """An edit of a ValueInfoProto: its first dimension symbolic if it is one of ``names``."""

    def edit(value: bytes) -> bytes:
        name = (_first(value, _VALUE_NAME) or b"").decode("utf-8", "replace")
        return _edited(value, {_VALUE_TYPE: _type}) if name in names else value

    return edit


def free_first_dimension(model: bytes, input_name: str | None, output_name: str | None) -> bytes:
    """The model with the first dimension of one input and one output named ``"N"`` (the first
    input/output when a name is None) and the graph's inferred intermediate shapes dropped."""
    graph = _first(model, _MODEL_GRAPH)
    if graph is None:
        raise OnnxFormatError("the model has no graph")
    inputs = [_first(p, _VALUE_NAME) for n, w, p, _ in _fields(graph) if n == _GRAPH_INPUT]
    outputs = [_first(p, _VALUE_NAME) for n, w, p, _ in _fields(graph) if n == _GRAPH_OUTPUT]
    if not inputs or not outputs:
        raise OnnxFormatError("the graph has no input or no output")
    names = {
        input_name or (inputs[0] or b"").decode("utf-8", "replace"),
        output_name or (outputs[0] or b"").decode("utf-8", "replace"),
    }
    value = _value_with_free_batch(names)
    graph_edits: dict[int, Edit] = {
        _GRAPH_INPUT: value,
        _GRAPH_OUTPUT: value,
        _GRAPH_VALUE_INFO: lambda _: None,
    }
    return _edited(model, {_MODEL_GRAPH: lambda g: _edited(g, graph_edits)})
