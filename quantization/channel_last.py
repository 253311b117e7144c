"""The TFLite conversion form of ``ElvMassNet``: the same function with 4-D (channel-last-friendly) encoders.

litert-torch lowers a ``Conv1d`` as RESHAPE -> TRANSPOSE -> CONV_2D -> TRANSPOSE -> RESHAPE (its
layout pass rewrites 4-D convolutions only), which put 31 TRANSPOSE and 28 RESHAPE ops, and their
tensors, around the 14 convolutions of the demo model. :func:`channel_last_form` turns each
``Conv1d`` into the equal ``Conv2d`` with a ``(1, k)`` kernel on ``(B, C, 1, L)`` tensors, each
``ConstantPad1d`` into a ``ZeroPad2d``, contiguous lead groups into slices, and the time pooling
into ``avg_pool2d`` / ``max_pool2d`` (NHWC-native; integer MAX_POOL_2D needs no DEQUANTIZE/QUANTIZE
pair): the layout pass then keeps every encoder channel-last with one TRANSPOSE at the input.
Host-side only (imports torch).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from training.model import LEAD_GROUPS


def conv2d_of(conv: nn.Conv1d) -> nn.Conv2d:
    """The ``Conv2d`` with kernel ``(1, k)`` that equals ``conv`` on ``(B, C, 1, L)`` tensors."""
    conv2d = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), stride=(1, conv.stride[0]),
                       padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]), groups=conv.groups,
                       bias=conv.bias is not None)
    with torch.no_grad():
        conv2d.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            conv2d.bias.copy_(conv.bias)
    return conv2d


def grouped_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    """One ``Conv2d`` with ``groups = len(convs)`` computing each conv on its own block of input channels.

    Its output channels are the convs' outputs, concatenated in order. Same weights, no zeros added.
    """
    first = convs[0]
    merged = nn.Conv2d(first.in_channels * len(convs), first.out_channels * len(convs), first.kernel_size,
                       stride=first.stride, padding=first.padding, dilation=first.dilation,
                       groups=first.groups * len(convs), bias=first.bias is not None)
    with torch.no_grad():
        merged.weight.copy_(torch.cat([c.weight for c in convs]))
        if first.bias is not None:
            merged.bias.copy_(torch.cat([c.bias for c in convs]))
    return merged


class GroupedEncoder(nn.Module):
    """``k`` equal ``TcnEncoder`` s (already 4-D) as one: every convolution grouped ``k`` ways.

    Input: the ``k`` lead groups' channels concatenated in order, ``(B, k * n_leads, 1, L)``;
    output: the ``k`` embeddings concatenated, ``(B, k * embed)``, as the separate encoders give
    them. In the TFLite graph this is one CONV_2D / PAD / ADD chain instead of ``k`` (about half
    the tensors and ops of the two-encoder demo model: each tensor record costs ~100 B in a
    file whose INT8 weights are ~21 kB).
    """

    def __init__(self, encoders: list[nn.Module]) -> None:
        super().__init__()
        self.k = len(encoders)
        self.body = copy.deepcopy(nn.Sequential(encoders[0].stem, encoders[0].blocks))
        parts = [dict(nn.Sequential(e.stem, e.blocks).named_modules()) for e in encoders]
        for name, module in list(self.body.named_modules()):
            if isinstance(module, nn.Conv2d):
                parent_name, _, child = name.rpartition(".")
                parent = self.body.get_submodule(parent_name) if parent_name else self.body
                setattr(parent, child, grouped_conv([p[name] for p in parts]))
        # project: Linear(2C -> E) on [mean_i, max_i] per encoder = W_mean @ mean_i + W_max @ max_i + b:
        # two grouped 1x1 convolutions and an ADD (no concatenation, whose int8 inputs would need
        # requantizing to one scale, and no reshapes to interleave the groups).
        projects = [e.project for e in encoders]
        half = projects[0].in_features // 2
        self.project_mean = grouped_conv([_conv1x1_of(p.weight[:, :half], p.bias) for p in projects])
        self.project_max = grouped_conv([_conv1x1_of(p.weight[:, half:], None) for p in projects])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        span = (1, h.shape[-1])
        projected = self.project_mean(F.avg_pool2d(h, span)) + self.project_max(F.max_pool2d(h, span))
        return torch.relu(projected).flatten(1)


def _conv1x1_of(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """The 1x1 ``Conv2d`` applying a Linear layer's ``weight`` (and ``bias``) to ``(B, C, 1, 1)``."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight.reshape(*weight.shape, 1, 1))
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


class ChannelLastNet(nn.Module):
    """``ElvMassNet.forward`` with every encoder on ``(B, C, 1, L)`` (built by :func:`channel_last_form`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.groups = LEAD_GROUPS[model.config.grouping]
        # Lead groups of equal size that tile the 12 leads in order (the paper's limb | precordial):
        # the encoders run as one grouped encoder on the whole input.
        sizes = {len(leads) for leads in self.groups}
        in_order = [lead for leads in self.groups for lead in leads] == list(range(12))
        self.grouped = GroupedEncoder(list(model.encoders)) if len(self.groups) > 1 and len(sizes) == 1 and in_order else None

    @staticmethod
    def encode(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h = encoder.blocks(encoder.stem(x))
        span = (1, h.shape[-1])
        pooled = torch.cat([F.avg_pool2d(h, span).flatten(1), F.max_pool2d(h, span).flatten(1)], dim=1)
        return torch.relu(encoder.project(pooled))

    def embeddings(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The lead-group embeddings of the normalized 4-D beat, in the encoders' order."""
        if self.grouped is not None:
            return [self.grouped(x)]
        parts = []
        for i, (leads, encoder) in enumerate(zip(self.groups, self.model.encoders)):
            contiguous = tuple(leads) == tuple(range(leads[0], leads[-1] + 1))
            part = x[:, leads[0]:leads[-1] + 1] if contiguous else x.index_select(1, getattr(self.model, f"leads_{i}"))
            parts.append(self.encode(encoder, part))
        return parts

    def forward(self, beat: torch.Tensor, demographics: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.from_embeddings(self.embeddings((beat / m.beat_scale).unsqueeze(2)), demographics, parameters)


def channel_last_form(model: nn.Module) -> ChannelLastNet:
    """Wrap an ``ElvMassNet`` (BatchNorm folded, chomps as left padding) for conversion; converts its encoders in place.

    Parameters
    ----------
    model
        ``ElvMassNet`` in eval mode, after ``fold_batchnorm`` and ``quantization.tflite.left_padded_convs``.

    Returns
    -------
    ChannelLastNet
        Same ``forward(beat, demographics, parameters)`` and outputs as ``model`` before the call.
    """
    for encoder in model.encoders:
        for parent in list(encoder.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv1d):
                    setattr(parent, name, conv2d_of(child))
                elif isinstance(child, nn.ConstantPad1d):
                    setattr(parent, name, nn.ZeroPad2d((child.padding[0], child.padding[1], 0, 0)))
    return ChannelLastNet(model).eval()
