"""Exporting generators: to ONNX, checked numerically against PyTorch with onnxruntime; and to one
component checkpoint file in half precision, as a model is shipped."""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from i2i_core.checkpoint import atomic_write_bytes, read_metadata, save_component
from i2i_core.errors import I2IError
from i2i_core.infer.translate import generator_checkpoint, load_generator


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float | None  # None when onnxruntime is not installed
    checked_shapes: list[tuple[int, ...]]


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    direction: str = "AtoB",
    dynamic_size: bool = False,
    size: int = 256,
    opset: int = 17,
) -> ExportResult:
    """Export the generator of ``direction`` to ONNX (input ``input``, output ``output``, (B, 3, H, W) in [-1, 1]).

    With ``dynamic_size`` batch, height and width are free (multiples of the generator's size multiple);
    otherwise the model takes (1, 3, size, size). If onnxruntime is installed the model is run on random
    inputs and compared with PyTorch; the largest absolute difference is returned.
    """
    net = load_generator(checkpoint, direction).float().eval()
    multiple = getattr(net, "size_multiple", 1)
    if size % multiple:
        raise I2IError(f"--size {size} is not a multiple of {multiple}, which this generator needs")
    example = torch.rand(1, 3, size, size) * 2 - 1
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing notes about shape checks and instance norm in eval mode
        torch.onnx.export(
            net,
            (example,),
            buffer,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes} if dynamic_size else None,
            opset_version=opset,
            dynamo=False,
        )
    atomic_write_bytes(output, buffer.getvalue())
    shapes = [(1, 3, size, size)]
    if dynamic_size:
        shapes.append((2, 3, size + multiple * max(1, 32 // multiple), size + 2 * multiple * max(1, 32 // multiple)))
    return ExportResult(Path(output), _check(net, buffer.getvalue(), shapes), shapes)


def _check(net: torch.nn.Module, model: bytes, shapes: list[tuple[int, ...]]) -> float | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    worst = 0.0
    for shape in shapes:
        x = torch.rand(*shape) * 2 - 1
        with torch.no_grad():
            expected = net(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        worst = max(worst, float(abs(got - expected).max()))
    return worst


#: The precisions ``export_component`` stores weights in.
STORED_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def export_component(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    direction: str = "AtoB",
    dtype: str = "fp16",
    extra: dict[str, str] | None = None,
) -> Path:
    """Write the generator of ``direction`` as one component checkpoint file: weights in ``dtype``, the
    metadata that rebuilds it, and ``extra`` metadata (what a shipped model records about how it was made).

    Example:
        >>> export_component("runs/photo2cartoon", "model.safetensors", extra={"steps": "8000"})  # doctest: +SKIP
    """
    if dtype not in STORED_DTYPES:
        raise I2IError(f"unknown precision '{dtype}'; use one of {', '.join(STORED_DTYPES)}")
    file = generator_checkpoint(checkpoint, direction)
    if Path(output).exists() and Path(output).resolve() == file.resolve():
        raise I2IError(f"-o {output} is the checkpoint being exported: write it elsewhere")
    metadata = read_metadata(file)
    options = json.loads(metadata.get("options", "{}"))
    net = load_generator(checkpoint, direction)
    return save_component(output, net, "generator", metadata["name"], options, dtype=STORED_DTYPES[dtype], extra=extra)
