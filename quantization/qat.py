"""Quantization-aware fine-tuning: a few epochs with int8 fake quantization, distilled from the fp32 model.

Used by ``elvmass quantize`` when post-training quantization misses a threshold. The model is the
BatchNorm-folded copy of the trained network (what both converters see), with

* weights of every Conv1d / Linear fake-quantized symmetric int8, one scale per tensor (what the
  preferred ONNX and TFLite configurations store) or per output channel;
* the input of every Conv1d / Linear fake-quantized per tensor, asymmetric int8, with min/max
  ranges observed on calibration rows and then frozen. The graph inputs stay float, as in the
  shipped configurations (the input normalization runs before the first quantize).

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
    batch_size: int = 256
    lr: float = 5e-5
    seed: int = 0
    max_rows: int = 4096  # beats per epoch at most (random subset): keeps a 2-core run to minutes
    per_channel: bool = False  # weight scales per output channel (else per tensor)


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


def _weight_fake_quant(weight, per_channel: bool = False):
    """Symmetric int8, per tensor or per output channel (the scale follows the weight as it trains)."""
    import torch

    if not per_channel:
        scale = float(weight.detach().abs().max().clamp_min(1e-8)) / 127.0
        return torch.fake_quantize_per_tensor_affine(weight, scale, 0, -127, 127)
    flat = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1).clamp_min(1e-8)
    scale = (flat / 127.0).to(torch.float32)
    zero_point = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


def _weight_parametrization_class():
    from torch import nn

    class WeightFakeQuant(nn.Module):
        """Weight parametrization: identity while ranges are observed, per-channel int8 rounding after."""

        def __init__(self, per_channel: bool) -> None:
            super().__init__()
            self.enabled = False
            self.per_channel = per_channel

        def forward(self, weight):
            return _weight_fake_quant(weight, self.per_channel) if self.enabled else weight

    return WeightFakeQuant


def _WeightFakeQuant(per_channel: bool):  # noqa: N802 - a factory standing in for the class (torch imported lazily)
    return _weight_parametrization_class()(per_channel)


class FakeQuantModel:
    """A BatchNorm-folded copy of a trained model, wrapped with fake quantization (see module docstring)."""

    def __init__(self, model, per_channel: bool = False) -> None:
        from torch import nn
        from torch.nn.utils import parametrize

        from training.model import fold_batchnorm

        self.module = fold_batchnorm(model).train()
        for layer in self.module.modules():  # dropout off: distillation wants the deterministic function
            if isinstance(layer, nn.Dropout):
                layer.p = 0.0
        self.layers = [m for m in self.module.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
        self.activations = [ActivationFakeQuant() for _ in self.layers]
        self.weights = _WeightFakeQuant(per_channel)
        self.hooks = []
        for layer, fake in zip(self.layers, self.activations):
            self.hooks.append(layer.register_forward_pre_hook(lambda _m, args, fake=fake: (fake(args[0]),)))
            parametrize.register_parametrization(layer, "weight", self.weights)

    def __call__(self, beat, demographics, parameters):
        return self.module(beat, demographics, parameters)

    def freeze_ranges(self) -> None:
        """Stop observing: from now on every observed tensor is rounded to int8."""
        for fake in self.activations:
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
    student = FakeQuantModel(model, config.per_channel)
    tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (beats, demographics, parameters)]
    with torch.no_grad():
        student(*[torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in calibration])
        target = torch.cat([teacher(*[t[i:i + 512] for t in tensors]) for i in range(0, len(beats), 512)])
    student.freeze_ranges()
    # A validation tenth of the rows picks the epoch (epoch 0 = the trained weights as they are), so the
    # fine-tuning can only keep a step that brought the fake-quantized model closer to fp32.
    order = rng.permutation(len(beats))
    n_val = max(1, min(len(beats) // 10, 2048))
    val, fit = order[:n_val], order[n_val:] if len(order) > n_val else order

    def val_l1() -> float:
        with torch.no_grad():
            rows = torch.from_numpy(val)
            return float(torch.nn.functional.l1_loss(student(*[t[rows] for t in tensors]), target[rows]))

    best = (val_l1(), 0, copy.deepcopy(student.module.state_dict()))
    if log is not None:
        log(f"QAT epoch 0/{config.epochs}: validation L1 to fp32 {best[0]:.3f} g (fake-quant int8, before fine-tuning)")
    optimizer = torch.optim.AdamW(student.module.parameters(), lr=config.lr, weight_decay=0.0)
    for epoch in range(1, config.epochs + 1):
        picked = rng.permutation(fit)[:config.max_rows]
        for start in range(0, len(picked), config.batch_size):
            rows = torch.from_numpy(picked[start:start + config.batch_size])
            loss = torch.nn.functional.l1_loss(student(*[t[rows] for t in tensors]), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        score = val_l1()
        if score < best[0]:
            best = (score, epoch, copy.deepcopy(student.module.state_dict()))
        if log is not None:
            log(f"QAT epoch {epoch}/{config.epochs}: validation L1 to fp32 {score:.3f} g (fake-quant int8)")
    student.module.load_state_dict(best[2])
    if log is not None:
        log(f"QAT: kept epoch {best[1]} (validation L1 to fp32 {best[0]:.3f} g)")
    return student.plain_module()
