"""Quantization-aware fine-tuning: a few epochs with int8 fake quantization, distilled from the fp32 model.

Used by ``elvmass quantize`` when post-training quantization misses a threshold. The model is the
BatchNorm-folded copy of the trained network (what both converters see), with

* weights of every Conv1d / Linear fake-quantized per output channel, symmetric int8 (what the
  ONNX QDQ path and ai-edge-quantizer store);
* the input of every Conv1d / Linear and the three graph inputs fake-quantized per tensor,
  asymmetric int8, with min/max ranges observed on calibration rows and then frozen (the
  graph inputs matter: a full-INT8 TFLite model quantizes ``demographics`` with one scale for age,
  sex, height and weight).

The loss is the L1 distance to the fp32 model's own output (distillation), not to the label: the
thresholds measure INT8 against fp32, and the fp32 model stays the reference that ships beside it.
Gradients pass the rounding straight through (``torch.fake_quantize_*``). The result is a plain
float module whose weights sit on (or next to) the int8 grid; the converters then quantize it as
usual, with the same calibration rows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QMIN, QMAX = -128, 127


@dataclass(frozen=True)
class QatConfig:
    """Fine-tuning settings (small: the model is already trained)."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    max_rows: int = 4096  # beats per epoch at most (random subset): keeps a 2-core run to minutes


def _per_tensor_qparams(low: float, high: float) -> tuple[float, int]:
    """Asymmetric int8 scale / zero point covering [low, high] (always including 0, as the converters do)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / (QMAX - QMIN), 1e-8)
    zero_point = int(np.clip(round(QMIN - low / scale), QMIN, QMAX))
    return scale, zero_point


class ActivationFakeQuant:
    """Per-tensor int8 fake quantization of one tensor: observe min/max, then freeze and round."""

    def __init__(self) -> None:
        self.low, self.high = np.inf, -np.inf
        self.observing = True

    def __call__(self, x):
        import torch

        if self.observing:
            self.low = min(self.low, float(x.detach().min()))
            self.high = max(self.high, float(x.detach().max()))
            return x
        scale, zero_point = _per_tensor_qparams(self.low, self.high)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, QMIN, QMAX)


def _weight_fake_quant(weight):
    """Per-output-channel symmetric int8 (the scale follows the weight as it trains)."""
    import torch

    flat = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1).clamp_min(1e-8)
    scale = (flat / 127.0).to(torch.float32)
    zero_point = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


def _weight_parametrization_class():
    from torch import nn

    class WeightFakeQuant(nn.Module):
        """Weight parametrization: identity while ranges are observed, per-channel int8 rounding after."""

        def __init__(self) -> None:
            super().__init__()
            self.enabled = False

        def forward(self, weight):
            return _weight_fake_quant(weight) if self.enabled else weight

    return WeightFakeQuant


def _WeightFakeQuant():  # noqa: N802 - a factory standing in for the class (torch imported lazily)
    return _weight_parametrization_class()()


class FakeQuantModel:
    """A BatchNorm-folded copy of a trained model, wrapped with fake quantization (see module docstring)."""

    def __init__(self, model) -> None:
        from torch import nn
        from torch.nn.utils import parametrize

        from training.model import fold_batchnorm

        self.module = fold_batchnorm(model).train()
        for layer in self.module.modules():  # dropout off: distillation wants the deterministic function
            if isinstance(layer, nn.Dropout):
                layer.p = 0.0
        self.layers = [m for m in self.module.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
        self.inputs = [ActivationFakeQuant() for _ in range(3)]
        self.activations = [ActivationFakeQuant() for _ in self.layers]
        self.weights = _WeightFakeQuant()
        self.hooks = []
        for layer, fake in zip(self.layers, self.activations):
            self.hooks.append(layer.register_forward_pre_hook(lambda _m, args, fake=fake: (fake(args[0]),)))
            parametrize.register_parametrization(layer, "weight", self.weights)

    def __call__(self, beat, demographics, parameters):
        args = [fake(x) for fake, x in zip(self.inputs, (beat, demographics, parameters))]
        return self.module(*args)

    def freeze_ranges(self) -> None:
        """Stop observing: from now on every observed tensor is rounded to int8."""
        for fake in (*self.inputs, *self.activations):
            fake.observing = False
        self.weights.enabled = True

    def plain_module(self):
        """The fine-tuned float module without hooks (eval mode), ready for ONNX / TFLite export."""
        from torch.nn.utils import parametrize

        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        module = copy.deepcopy(self.module).eval()
        for layer in module.modules():
            if parametrize.is_parametrized(layer, "weight"):
                # The latent float weights: the converters' per-channel max/127 grid is the fake-quant grid.
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        return module


def qat_finetune(model, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray,
                 calibration: tuple[np.ndarray, np.ndarray, np.ndarray], config: QatConfig = QatConfig(),
                 log: Callable[[str], None] | None = None):
    """Fine-tune ``model`` with int8 fake quantization, distilled from its own fp32 outputs.

    Parameters
    ----------
    model
        The trained ``ElvMassNet`` (eval mode); not modified.
    beats, demographics, parameters
        Training rows (imputed, raw units): never the held-out rows the INT8 check scores.
    calibration
        ``(beats, demographics, parameters)`` whose min/max fix the activation ranges (the same rows
        the converters calibrate on, so the ranges agree).
    config
        Epochs, batch size, learning rate, seed.

    Returns
    -------
    torch.nn.Module
        A float, BatchNorm-folded copy in eval mode; export it like the original.
    """
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine: two threads spin-wait (docs/training.md)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    teacher = model.eval()
    student = FakeQuantModel(model)
    tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (beats, demographics, parameters)]
    with torch.no_grad():
        student(*[torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in calibration])
        target = torch.cat([teacher(*[t[i:i + 512] for t in tensors]) for i in range(0, len(beats), 512)])
    student.freeze_ranges()
    optimizer = torch.optim.AdamW(student.module.parameters(), lr=config.lr, weight_decay=0.0)
    for epoch in range(config.epochs):
        order = rng.permutation(len(beats))[:config.max_rows]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = torch.from_numpy(order[start:start + config.batch_size])
            loss = torch.nn.functional.l1_loss(student(*[t[rows] for t in tensors]), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        if log is not None:
            log(f"QAT epoch {epoch + 1}/{config.epochs}: L1 to fp32 {total / len(order):.3f} g (fake-quant int8)")
    return student.plain_module()
