"""Int8 inference on CPU: static post-training quantization of a segmentation model (torchao PT2E + inductor).

The fastest path at 256² windows measured by ``bench/speed.py`` (README): the convolutions run in int8 (weights per
channel, activations per tensor, calibrated on real windows), compiled by ``torch.compile`` with freezing. The price:
``torchao`` and a C++ compiler at run time, quantization and compilation once per process and window size, and one
fixed input shape (``window``² windows, ``batch`` at a time; smaller batches are padded). Labels agree with the float
model on ~99.6 % of the pixels of 256² windows; at fast mode's 512² windows it is no faster than bfloat16 and agrees
less with paper mode (``bench/speed.py`` reports both).

``optimise_for_cpu`` (float32 or bfloat16, no compiler, no warm-up) is the default path of prediction jobs; this one
is opt-in (``RCMWEB_PREDICT_PRECISION=int8``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from inference.ml.infer import PAPER_WINDOW

DEFAULT_BATCH = 2  # windows per compiled call: the fastest batch for 256² windows on 2 cores (bench/speed.py)
MIN_CALIBRATION_WINDOWS = 4  # fewer windows give activation ranges that clip on the next mosaic
MAX_CALIBRATION_WINDOWS = 256  # more adds minutes of calibration without changing the ranges


class QuantizedModel(nn.Module):
    """Int8 compiled model with the segmentation-model contract for ``window``² inputs.

    ``[B, 1, window, window]`` float 0..1 → list of logits per level (float32), like the model it was made from;
    any ``B`` (run ``batch`` at a time, the last chunk zero-padded). Other sizes raise ``ValueError``.
    """

    def __init__(self, compiled: nn.Module, source: nn.Module, window: int, batch: int) -> None:
        super().__init__()
        self.compiled = compiled
        self.window = window
        self.batch = batch
        self.required_multiple = window  # the only accepted size
        self.num_levels = int(getattr(source, "num_levels", 1))
        self.config = getattr(source, "config", None)

    def train(self, mode: bool = True) -> QuantizedModel:
        """Only the flag changes: the int8 graph is inference-only (and refuses ``train()``/``eval()`` itself)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, self.window, self.window):
            raise ValueError(
                f"quantized model takes [B, 1, {self.window}, {self.window}] (the window it was compiled for), "
                f"got {tuple(x.shape)}"
            )
        x = x.float().contiguous()
        outputs: list[list[torch.Tensor]] = []
        for i in range(0, x.shape[0], self.batch):
            chunk = x[i : i + self.batch]
            n = chunk.shape[0]
            if n < self.batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.batch - n, *chunk.shape[1:]))])
            outputs.append([level[:n] for level in self.compiled(chunk)])
        return [torch.cat([o[m] for o in outputs]) for m in range(len(outputs[0]))]


def _calibration_tensor(windows: np.ndarray | torch.Tensor | Sequence[np.ndarray], window: int) -> torch.Tensor:
    if isinstance(windows, torch.Tensor):
        x = windows.float()
    else:
        arr = np.asarray(windows)
        x = torch.from_numpy(arr).float()
        if arr.dtype == np.uint8:
            x = x / 255.0
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, window, window):
        raise ValueError(f"calibration windows must be [N, {window}, {window}] or [N, 1, {window}, {window}], "
                         f"got {tuple(x.shape)}")
    if not MIN_CALIBRATION_WINDOWS <= x.shape[0] <= MAX_CALIBRATION_WINDOWS:
        raise ValueError(f"give {MIN_CALIBRATION_WINDOWS}..{MAX_CALIBRATION_WINDOWS} calibration windows, "
                         f"got {x.shape[0]}")
    return x.contiguous()


def quantize_for_cpu(
    model: nn.Module,
    calibration: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    *,
    window: int = PAPER_WINDOW,
    batch: int = DEFAULT_BATCH,
) -> QuantizedModel:
    """Quantize ``model`` to int8 with activation ranges from ``calibration`` and compile it for CPU.

    calibration: ``[N, window, window]`` uint8 (0..255) or float (0..1) windows of real mosaics, or
    ``[N, 1, window, window]``. The original model is left untouched. Raises ``ImportError`` naming the package if
    ``torchao`` is missing.
    """
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("quantize_for_cpu needs the 'torchao' package (see requirements.txt)") from exc
    import torch._inductor.config as inductor_config

    x = _calibration_tensor(calibration, window)
    source = model
    was_training = model.training
    model.eval()
    try:
        example = x[:batch] if x.shape[0] >= batch else torch.cat([x] * batch)[:batch]
        exported = torch.export.export(model, (example,)).module()
    finally:
        model.train(was_training)
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(0, x.shape[0] - batch + 1, batch):
            prepared(x[i : i + batch])
    converted = convert_pt2e(prepared)
    inductor_config.freezing = True  # constant-fold the quantized weights into the compiled graph
    compiled = torch.compile(converted)
    quantized = QuantizedModel(compiled, source, window, batch)
    with torch.no_grad():
        quantized(example)  # compile now rather than on the first real call
    return quantized
