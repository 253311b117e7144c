"""Strip a TFLite file of the records its interpreter never reads, and store equal records once.

The demo model has ~21 k weights, so a TFLite file of it is mostly records (one per tensor,
operator, buffer and quantization): the converters write names, a signature, metadata and one
copy of every shape and option table per tensor or operator. :func:`strip_tflite` removes what
the LiteRT interpreter does not use and writes each equal vector or table once; the graph, its
constants, scales and zero points are unchanged, so the interpreter computes the same bits
(``tests/test_quant_tflite_strip.py`` runs both files on the same inputs). The quantize pipeline
ships and verifies the stripped fp32 and INT8 files; it quantizes from the unstripped fp32 file,
whose tensor names and signature ai-edge-quantizer needs.

Needs ``ai-edge-litert`` (its flatbuffer schema module; no TensorFlow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Metadata the converters write for themselves: the runtime version the converter estimated, a flag
# for re-importing StableHLO constants, the conversion options. No kernel or delegate reads them.
CONVERTER_METADATA = (b"min_runtime_version", b"keep_stablehlo_constant", b"CONVERSION_METADATA")


def strip_tflite(model_bytes: bytes) -> bytes:
    """The same model without the records a TFLite interpreter does not read, equal records stored once.

    Removed, and why each can go:

    * internal tensor names, the model description and the subgraph name: the interpreter
      addresses tensors by index; graph input and output names are kept (the bundle manifest
      refers to them).
    * signature defs: the runtime (``edge_runtime.inference.LiteRTBackend``) feeds tensors by
      name and index, never through a signature runner.
    * the converters' metadata entries (:data:`CONVERTER_METADATA`) and their buffers: converter
      bookkeeping that no kernel reads (other metadata is kept).
    * ``QuantizationParameters.min`` / ``max``: kernels use scale and zero point only; and
      empty quantization tables on float tensors.
    * ``shape_signature`` when it equals ``shape`` (no dynamic dimension to record), and
      ``has_rank`` on tensors with a non-empty shape: the schema defines it only to tell a scalar
      (shape ``[]``, has_rank true) from a tensor of unknown rank (shape ``[]``, false).
    * buffers no tensor refers to.

    Then every equal shape or index vector, quantization table and operator option table is
    written once and shared by the records that use it (a flatbuffer offset may point at any
    earlier object), instead of once per tensor or operator.

    Parameters
    ----------
    model_bytes
        A TFLite flatbuffer (``.tflite`` file contents).

    Returns
    -------
    bytes
        The stripped flatbuffer: same operators, tensors (in the same order), constants,
        scales and zero points, so the interpreter's outputs are bit-identical.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    model.description = None
    model.signatureDefs = None
    model.metadata = [entry for entry in model.metadata or () if entry.name not in CONVERTER_METADATA] or None
    for subgraph in model.subgraphs:
        subgraph.name = None
        interface = set(subgraph.inputs) | set(subgraph.outputs)
        for index, tensor in enumerate(subgraph.tensors):
            if index not in interface:
                tensor.name = None
            if tensor.shapeSignature is not None and list(tensor.shapeSignature) == list(tensor.shape):
                tensor.shapeSignature = None
            if len(tensor.shape or ()):
                tensor.hasRank = False  # the schema's flag tells a scalar from an unknown rank, both shape []
            quantization = tensor.quantization
            if quantization is not None:
                quantization.min = quantization.max = None
                if quantization.scale is None and quantization.zeroPoint is None and quantization.details is None:
                    tensor.quantization = None
    _drop_unreferenced_buffers(model)
    return bytes(_pack_shared(model))


def strip_tflite_file(source: Path, target: Path | None = None) -> Path:
    """Write :func:`strip_tflite` of ``source`` to ``target`` (default: in place) and return ``target``."""
    target = Path(target or source)
    stripped = strip_tflite(Path(source).read_bytes())
    target.write_bytes(stripped)
    return target


def _drop_unreferenced_buffers(model) -> None:
    """Remove buffers that no tensor or metadata entry uses, keeping buffer 0 (the schema's empty sentinel);
    renumber the rest."""
    used = {0} | {int(tensor.buffer) for subgraph in model.subgraphs for tensor in subgraph.tensors}
    used |= {int(entry.buffer) for entry in model.metadata or ()} | {int(index) for index in model.metadataBuffer or ()}
    kept = [index for index in range(len(model.buffers)) if index in used]
    new_index = {old: new for new, old in enumerate(kept)}
    model.buffers = [model.buffers[index] for index in kept]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = new_index[int(tensor.buffer)]
    for entry in model.metadata or ():
        entry.buffer = new_index[int(entry.buffer)]
    if model.metadataBuffer is not None:  # the deprecated list of metadata buffer indices
        model.metadataBuffer = [new_index[int(index)] for index in model.metadataBuffer]


class _SharedTable:
    """An object-API table packed once per builder; every record holding it gets the same offset."""

    def __init__(self, table) -> None:
        self.table = table
        self.offset: int | None = None

    def Pack(self, builder) -> int:  # noqa: N802 - the flatbuffers object-API name the generated code calls
        if self.offset is None:
            self.offset = self.table.Pack(builder)
        return self.offset


def _table_key(table) -> tuple:
    """Content of an object-API table (nested tables and arrays included), hashable."""
    def value(v):
        if isinstance(v, np.ndarray):
            return (v.dtype.str, v.tobytes())
        if isinstance(v, list):
            return tuple(value(x) for x in v)
        if hasattr(v, "__dict__"):
            return _table_key(v)
        return v

    return (type(table).__name__,) + tuple((k, value(v)) for k, v in sorted(vars(table).items()))


def _pack_shared(model) -> bytearray:
    """Serialize ``model`` writing equal vectors, strings, quantization and option tables once."""
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        def __init__(self) -> None:
            super().__init__(1024)
            self.vectors: dict[tuple, int] = {}
            self.strings: dict[bytes, int] = {}

        def CreateNumpyVector(self, x):  # noqa: N802 - overrides flatbuffers.Builder
            key = (x.dtype.str, x.tobytes())
            if key not in self.vectors:
                self.vectors[key] = super().CreateNumpyVector(x)
            return self.vectors[key]

        def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802 - overrides flatbuffers.Builder
            key = s if isinstance(s, bytes) else s.encode(encoding, errors)
            if key not in self.strings:
                self.strings[key] = super().CreateString(s, encoding, errors)
            return self.strings[key]

    shared: dict[tuple, _SharedTable] = {}

    def share(table):
        return shared.setdefault(_table_key(table), _SharedTable(table))

    for subgraph in model.subgraphs:
        subgraph.inputs = np.asarray(subgraph.inputs, np.int32)
        subgraph.outputs = np.asarray(subgraph.outputs, np.int32)
        for tensor in subgraph.tensors:
            if tensor.shape is not None:  # int lists are packed inline, arrays through CreateNumpyVector
                tensor.shape = np.asarray(tensor.shape, np.int32)
            if tensor.quantization is not None:
                tensor.quantization = share(tensor.quantization)
        for operator in subgraph.operators:
            operator.inputs = np.asarray(operator.inputs, np.int32)
            operator.outputs = np.asarray(operator.outputs, np.int32)
            if operator.builtinOptions is not None:
                operator.builtinOptions = share(operator.builtinOptions)
    builder = SharingBuilder()
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return builder.Output()


def main(argv: list[str] | None = None) -> int:
    """``python -m quantization.tflite_strip FILE.tflite...``: each file's size before and after stripping.

    Nothing is written (the pipeline strips what it ships; this only measures).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m quantization.tflite_strip",
                                     description="Size of each TFLite file before and after strip_tflite.")
    parser.add_argument("files", type=Path, nargs="+")
    for path in parser.parse_args(argv).files:
        data = path.read_bytes()
        print(f"{path}: {len(data)} B -> {len(strip_tflite(data))} B stripped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
