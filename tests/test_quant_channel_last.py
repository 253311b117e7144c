"""The TFLite conversion form of eLVMass-Net (quantization.channel_last): same outputs, 4-D grouped encoders."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) builds the test model")

from conftest import as_if_trained  # noqa: E402
from conftest import contract_inputs as inputs  # noqa: E402


def converted_form(config):
    from quantization.channel_last import channel_last_form
    from quantization.tflite import left_padded_convs
    from training.model import ElvMassNet, fold_batchnorm

    torch.manual_seed(0)
    model = as_if_trained(ElvMassNet(config).eval(), 32)
    return model, channel_last_form(left_padded_convs(fold_batchnorm(model)))


@pytest.mark.parametrize("grouping, features, grouped", [
    ("electrical", "ecg+demo+params", True),  # limb | precordial: equal groups in lead order -> one grouped encoder
    ("anatomical", "ecg+params", False),  # unequal, out-of-order groups: one encoder each, leads gathered
    ("none", "ecg", False),
])
def test_channel_last_form_computes_the_model(grouping, features, grouped):
    from training.model import ModelConfig

    model, form = converted_form(ModelConfig(grouping=grouping, features=features, channels=8, levels=2, embed=8, hidden=16))
    assert (form.grouped is not None) == grouped
    assert not any(isinstance(m, torch.nn.Conv1d) for m in (form.grouped or form.model.encoders).modules())
    beats, demo, params = (torch.from_numpy(x) for x in inputs(8, seed=3))
    with torch.no_grad():
        torch.testing.assert_close(form(beats, demo, params), model(beats, demo, params), atol=1e-4, rtol=0)


def test_grouped_encoder_has_the_weights_of_the_separate_encoders_and_no_more():
    from training.model import ModelConfig

    from training.model import fold_batchnorm

    model, form = converted_form(ModelConfig(channels=8, levels=2, embed=8, hidden=16))
    separate = sum(p.numel() for p in fold_batchnorm(model).encoders.parameters())
    assert sum(p.numel() for p in form.grouped.parameters()) == separate  # grouped convolutions add no zeros
    convs = [m for m in form.grouped.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.groups == 2 for c in convs)
