"""The one flag registry: every raised flag is registered, with a consequence and an operator text."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT
from edge_runtime.contract import IMPUTED_FEATURES
from edge_runtime.flags import REGISTRY, Consequence, Flag, FlagSpec, names_with
from edge_runtime.runtime import estimate as est


def test_a_flag_without_operator_text_cannot_be_registered():
    with pytest.raises(ValueError, match="no operator text"):
        FlagSpec("new_problem", Consequence.BLOCKS, "  ")
    with pytest.raises(ValueError, match="where"):
        FlagSpec("new_problem", Consequence.BLOCKS, "Check it.", "Check it there.")
    with pytest.raises(ValueError, match="Consequence"):
        FlagSpec("new_problem", "blocks", "Check it.")  # type: ignore[arg-type]


def test_every_registered_flag_speaks_to_the_operator():
    for name, entry in REGISTRY.items():
        assert entry.name == name
        text = entry.operator_text
        assert text[0].isupper() and text.rstrip().endswith((".", "!")), name
        assert "_" not in text, f"{name}: operator text shows a code name: {text!r}"


def test_unregistered_flag_is_refused():
    with pytest.raises(KeyError, match="not in the registry"):
        Flag("brand_new_problem", "detail")


def test_where_goes_into_the_operator_text():
    assert Flag("lead_off", "flat", where="V4").operator_text.startswith("Electrode off or loose: V4.")
    assert Flag("lead_off", "flat").operator_text.startswith("An electrode is off")
    assert Flag("noise", "x", where="V2").operator_text == REGISTRY["noise"].operator_text  # no 'where' text
    row = Flag("af_suspected", "RR irregular").to_dict()
    assert row["consequence"] == "outside_population" and row["reason"] == "RR irregular"


def test_the_estimate_reads_the_registry():
    assert est.NO_ESTIMATE_FLAGS == names_with(Consequence.BLOCKS)
    assert est.OUTSIDE_POPULATION_FLAGS == names_with(Consequence.OUTSIDE)
    for name, entry in REGISTRY.items():
        expected = {Consequence.BLOCKS: "no_estimate", Consequence.OUTSIDE: "outside_population",
                    Consequence.INFO: "ok"}[entry.consequence]
        assert est.decide_status([Flag(name, "test")]) == expected, name
    # training's exclusion rule: everything that is not informational
    assert Flag("wide_qrs", "x").excludes and Flag("lead_off", "x").excludes
    assert not Flag("imputed_age_years", "x").excludes


def test_every_flag_raised_in_the_code_is_registered_and_every_registered_flag_is_raised():
    # A static read of the device code: Flag("name", ...) literals and the imputed_* family.
    pattern = re.compile(r"\bFlag\(\s*\"([a-z0-9_]+)\"")
    raised = set()
    for path in (REPO_ROOT / "edge_runtime").rglob("*.py"):
        if path.name == "flags.py":
            continue
        raised.update(pattern.findall(path.read_text()))
    raised |= {f"imputed_{name}" for name in IMPUTED_FEATURES}
    raised |= {"sex_unknown", "model_refused"}  # chosen by name in estimate_window
    assert raised - set(REGISTRY) == set(), "raised but not registered"
    assert set(REGISTRY) - raised == set(), "registered but never raised (raise it for real or remove it)"
