"""eLVMass-Net: TCN encoders per lead group + demographics/parameter MLPs + fusion MLP regressor.

Inputs are raw units, ordered as :mod:`edge_runtime.contract` says: ``beat`` (B, 12, L) mV,
``demographics`` (B, 4) ``DEMOGRAPHIC_FEATURES``, ``parameters`` (B, 4) ``MODEL_PARAMETERS`` (QRS
duration in ms, then three axes in degrees). Normalization constants are registered buffers (fitted
on the training fold), so the exported graph takes raw units. Ops are chosen to export to
ONNX/TFLite and quantize cleanly: Conv1d, ReLU, causal padding by slicing ("chomp"), BatchNorm
(folded into the convolutions at export by :func:`fold_batchnorm`), Linear, sin/cos, mean/max pool.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edge_runtime.contract import DEMOGRAPHIC_FEATURES, MODEL_PARAMETERS

# Lead indices in STANDARD_LEADS order (I, II, III, aVR, aVL, aVF, V1..V6).
LEAD_GROUPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": (tuple(range(12)),),
    "electrical": ((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11)),  # limb | precordial (the paper's default)
    "anatomical": ((6, 7, 8, 9), (0, 4, 10, 11), (1, 2, 5), (3,)),  # anterior | lateral | inferior | aVR
}
FEATURE_SETS = ("ecg", "ecg+params", "ecg+demo", "ecg+demo+params")
# forward() reads parameters by position: the QRS duration first, then three axes (sin/cos encoded).
QRS_COLUMN, AXIS_COLUMNS = 0, slice(1, 4)
if MODEL_PARAMETERS[QRS_COLUMN] != "qrs_ms" or not all(n.endswith("_axis") for n in MODEL_PARAMETERS[AXIS_COLUMNS]):
    raise RuntimeError(f"ElvMassNet reads parameters as [qrs_ms, 3 axes]; the contract now says {MODEL_PARAMETERS}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (saved with every run)."""

    grouping: str = "electrical"
    features: str = "ecg+demo+params"
    channels: int = 16
    levels: int = 3  # dilations 1, 2, 4 (after the stem: receptive field ~57 steps = 456 ms at 500 Hz / 4)
    kernel_size: int = 5
    stem_stride: int = 4  # strided input conv: 500 Hz -> 125 steps/s; keeps CPU training inside budget
    dropout: float = 0.1
    embed: int = 16  # width of each branch's embedding
    hidden: int = 32  # fusion MLP width

    def __post_init__(self) -> None:
        if self.grouping not in LEAD_GROUPS:
            raise ValueError(f"grouping {self.grouping!r} not in {sorted(LEAD_GROUPS)}")
        if self.features not in FEATURE_SETS:
            raise ValueError(f"features {self.features!r} not in {FEATURE_SETS}")

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> "ElvMassNet":
        return ElvMassNet(self)


class Chomp1d(nn.Module):
    """Drop the trailing ``size`` samples: turns symmetric Conv1d padding into causal padding."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.size] if self.size else x


class TemporalBlock(nn.Module):
    """Locuslab TCN residual block: 2 x (dilated causal Conv1d -> BatchNorm -> ReLU -> dropout) + skip."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = (kernel_size - 1) * dilation
        self.net = nn.Sequential(
            nn.Conv1d(n_in, n_out, kernel_size, padding=pad, dilation=dilation),
            Chomp1d(pad), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(n_out, n_out, kernel_size, padding=pad, dilation=dilation),
            Chomp1d(pad), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout),
        )
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.net(x) + self.downsample(x))


class TcnEncoder(nn.Module):
    """Stack of temporal blocks with doubling dilation, then mean+max pooling over time -> embedding."""

    def __init__(self, n_leads: int, config: ModelConfig) -> None:
        super().__init__()
        stride = config.stem_stride
        # Learned anti-aliasing decimation: kernel 2*stride, same-style zero padding via Conv1d padding=.
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, config.channels, 2 * stride, stride=stride, padding=stride // 2),
            nn.BatchNorm1d(config.channels), nn.ReLU(),
        )
        blocks, n_in = [], config.channels
        for level in range(config.levels):
            blocks.append(TemporalBlock(n_in, config.channels, config.kernel_size, 2**level, config.dropout))
            n_in = config.channels
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Linear(2 * config.channels, config.embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return torch.relu(self.project(pooled))


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out), nn.ReLU())


class ElvMassNet(nn.Module):
    """The regressor; ``forward(beat, demographics, parameters) -> lvm_g (B, 1)`` in raw units."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        groups = LEAD_GROUPS[config.grouping]
        for i, leads in enumerate(groups):
            self.register_buffer(f"leads_{i}", torch.tensor(leads, dtype=torch.long), persistent=False)
        self.encoders = nn.ModuleList(TcnEncoder(len(leads), config) for leads in groups)
        self.use_demo = "demo" in config.features
        self.use_params = "params" in config.features
        n_fused = config.embed * len(groups)
        if self.use_demo:
            self.demo_mlp = _mlp(len(DEMOGRAPHIC_FEATURES), config.embed, config.embed)
            n_fused += config.embed
        if self.use_params:
            self.param_mlp = _mlp(7, config.embed, config.embed)  # qrs + sin/cos of 3 axes
            n_fused += config.embed
        self.head = nn.Sequential(nn.Linear(n_fused, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.hidden, 1))
        # Normalization constants, fitted on the training fold by fit_normalization().
        self.register_buffer("beat_scale", torch.ones(1, 12, 1))
        self.register_buffer("demo_mean", torch.zeros(len(DEMOGRAPHIC_FEATURES)))
        self.register_buffer("demo_std", torch.ones(len(DEMOGRAPHIC_FEATURES)))
        self.register_buffer("qrs_mean", torch.zeros(1))
        self.register_buffer("qrs_std", torch.ones(1))
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_std", torch.ones(1))

    def fit_normalization(self, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray,
                          lvm_g: np.ndarray) -> None:
        """Set the baked-in constants from training-fold arrays (already imputed, no NaN)."""
        scale = np.sqrt(np.mean(np.square(beats, dtype=np.float64), axis=(0, 2))).reshape(1, 12, 1)
        self.beat_scale.copy_(torch.as_tensor(np.maximum(scale, 1e-3), dtype=torch.float32))
        self.demo_mean.copy_(torch.as_tensor(demographics.mean(axis=0), dtype=torch.float32))
        self.demo_std.copy_(torch.as_tensor(np.maximum(demographics.std(axis=0), 1e-3), dtype=torch.float32))
        self.qrs_mean.fill_(float(parameters[:, QRS_COLUMN].mean()))
        self.qrs_std.fill_(max(float(parameters[:, QRS_COLUMN].std()), 1e-3))
        self.target_mean.fill_(float(np.mean(lvm_g)))
        self.target_std.fill_(max(float(np.std(lvm_g)), 1e-3))

    def forward(self, beat: torch.Tensor, demographics: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        x = beat / self.beat_scale
        parts = [encoder(x.index_select(1, getattr(self, f"leads_{i}"))) for i, encoder in enumerate(self.encoders)]
        return self.from_embeddings(parts, demographics, parameters)

    def from_embeddings(self, parts: list[torch.Tensor], demographics: torch.Tensor,
                        parameters: torch.Tensor) -> torch.Tensor:
        """LV mass (g) from the lead-group embeddings ``parts``: the tabular branches, the head and the target
        scale (shared with the conversion forms of ``quantization.channel_last``)."""
        parts = list(parts)
        if self.use_demo:
            parts.append(self.demo_mlp((demographics - self.demo_mean) / self.demo_std))
        if self.use_params:
            axes = parameters[:, AXIS_COLUMNS] * (math.pi / 180.0)
            qrs = (parameters[:, QRS_COLUMN:QRS_COLUMN + 1] - self.qrs_mean) / self.qrs_std
            parts.append(self.param_mlp(torch.cat([qrs, torch.sin(axes), torch.cos(axes)], dim=1)))
        z = self.head(torch.cat(parts, dim=1))
        out = z * self.target_std + self.target_mean
        # Keep every interface input in the graph even when a feature set ignores it (adds exactly 0).
        unused = (demographics[:, :1] * 0.0) if not self.use_demo else None
        if not self.use_params:
            unused = parameters[:, :1] * 0.0 if unused is None else unused + parameters[:, :1] * 0.0
        return out if unused is None else out + unused


class ElvMassEnsemble(nn.Module):
    """The mean of independently trained ElvMassNets (same inputs, same interface, one exported graph).

    Members differ only in their initialization and batch order (seeds); each was trained on the same
    training data and kept at its own best validation epoch. The mean is written as adds and one
    division so the exported graph stays plain ONNX.
    """

    def __init__(self, members: list[ElvMassNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, beat: torch.Tensor, demographics: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        out = self.members[0](beat, demographics, parameters)
        for member in self.members[1:]:
            out = out + member(beat, demographics, parameters)
        return out / float(len(self.members))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy with every eval-mode BatchNorm1d folded into the Conv1d before it (the one BatchNorm fold:
    ``training.export.export_onnx`` applies it, so every exported graph is already folded).

    BatchNorm is a per-channel affine map, so it commutes with the chomp slice between them.
    """
    import copy

    folded = copy.deepcopy(model).eval()
    for sequential in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        conv = None
        for index, layer in enumerate(sequential):
            if isinstance(layer, nn.Conv1d):
                conv = layer
            elif isinstance(layer, nn.BatchNorm1d) and conv is not None:
                scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
                with torch.no_grad():
                    conv.weight.mul_(scale.view(-1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(layer.running_mean)
                    conv.bias = nn.Parameter((bias - layer.running_mean) * scale + layer.bias)
                sequential[index] = nn.Identity()
                conv = None
            elif not isinstance(layer, Chomp1d):
                conv = None
    return folded


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
