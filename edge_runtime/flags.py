"""The one flag registry: every finding a result can carry, what it does, and what the operator reads.

A flag has a stable ``name`` (stored, exported, tested), a :class:`Consequence` (does it block the estimate,
mark the patient outside the studied population, or only inform) and an ``operator_text``: plain words a
nurse at the cart can act on. Developer detail (numbers, thresholds) travels separately in ``Flag.reason``
and goes to logs and the JSON, not to the screen's headline.

The signal core, the window assembler, the estimate, training's exclusions, the reports and the station all
read this table; creating a :class:`Flag` whose name is not registered raises, so a new finding cannot reach
a result without its consequence and its operator text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Consequence(str, enum.Enum):
    """What a flag does to the result."""

    BLOCKS = "blocks"  # no number: the window's signal or inputs cannot be trusted
    OUTSIDE = "outside_population"  # a number, clearly marked: the model never saw such patients
    INFO = "informational"  # the number stands; the operator should know


@dataclass(frozen=True)
class FlagSpec:
    """One registered flag. ``operator_text_where`` is used instead of ``operator_text`` when the flag names
    where it was found (electrodes, leads, fields): it must contain ``{where}``."""

    name: str
    consequence: Consequence
    operator_text: str
    operator_text_where: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"flag name {self.name!r}: use lower_case_with_underscores")
        if not isinstance(self.consequence, Consequence):
            raise ValueError(f"flag {self.name!r}: consequence must be a Consequence, got {self.consequence!r}")
        if not self.operator_text.strip():
            raise ValueError(f"flag {self.name!r} has no operator text")
        if self.operator_text_where is not None and "{where}" not in self.operator_text_where:
            raise ValueError(f"flag {self.name!r}: operator_text_where must contain {{where}}")


_B, _O, _I = Consequence.BLOCKS, Consequence.OUTSIDE, Consequence.INFO
_RECORD_AGAIN = "Keep the patient still; a new 10 s recording starts by itself."

_SPECS = [
    # signal quality (signal core and window assembler)
    FlagSpec("lead_off", _B, "An electrode is off or loose. Check the electrodes. " + _RECORD_AGAIN,
             "Electrode off or loose: {where}. Reattach it. " + _RECORD_AGAIN),
    FlagSpec("saturation", _B, "The signal is too large for the amplifier (clipped). Press the electrodes on "
             "firmly or replace them.", "Signal clipped on {where}. Press that electrode on firmly or replace it."),
    FlagSpec("noise", _B, "Too much movement or muscle noise: ask the patient to lie still and relax. " + _RECORD_AGAIN),
    FlagSpec("too_few_beats", _B, "Too few heartbeats in the 10 s recording to measure. " + _RECORD_AGAIN),
    FlagSpec("inconsistent_morphology", _B, "The heartbeats differ too much from one another (extra beats or "
             "artefact). " + _RECORD_AGAIN),
    FlagSpec("no_clean_beats", _B, "Not enough clean, matching heartbeats to measure. " + _RECORD_AGAIN),
    FlagSpec("needs_12_leads", _B, "All 12 leads are needed: attach every electrode (RA, LA, LL, RL, V1-V6).",
             "All 12 leads are needed; no signal on {where}. Attach those electrodes."),
    FlagSpec("no_delineation", _B, "The heart's axis cannot be measured without all limb leads: attach RA, LA and LL."),
    FlagSpec("non_finite_samples", _B, "The recording contains invalid samples. Record again; if it repeats, call service."),
    FlagSpec("analysis_error", _B, "The recording could not be analysed. Record again; if it repeats, call service."),
    FlagSpec("normalized_amplitudes", _B, "This file's amplitudes are rescaled lead by lead, so LV mass cannot be "
             "estimated from it. Use the cart's original export."),
    FlagSpec("electrode_reversal", _B, "Limb electrodes may be swapped: check RA, LA and LL and record again.",
             "Limb electrodes may be swapped ({where}): check that each is on its own limb and record again."),
    FlagSpec("neutral_electrode_misplaced", _B, "The neutral electrode (RL) may be on an arm: put RL on the right leg "
             "and record again.", "The neutral electrode may be swapped with an arm electrode ({where}): put RL on "
             "the right leg and RA, LA on the arms, and record again."),
    FlagSpec("pacing", _B, "Pacemaker spikes found: LV mass cannot be estimated from a paced ECG."),
    # model and patient inputs
    FlagSpec("no_model", _B, "No model is installed on this device: call service."),
    FlagSpec("sex_unknown", _B, "Enter the patient's sex (on the command line: --sex M or --sex F): it selects the "
             "model and the LVH threshold."),
    FlagSpec("model_refused", _B, "The model could not use this patient's data. Check the patient entries; if they "
             "are right, call service."),
    FlagSpec("model_output_invalid", _B, "The model returned an invalid value: call service."),
    # outside the studied population: a number, marked
    FlagSpec("af_suspected", _O, "Irregular rhythm, possibly atrial fibrillation: the model was not trained on it. "
             "The number is for information only."),
    FlagSpec("wide_qrs", _O, "Wide QRS (possible bundle branch block): the model was not trained on it. The number "
             "is for information only."),
    FlagSpec("outside_training_range", _O, "A patient value lies outside the range the model was trained on: "
             "interpret the number with caution.", "{where} lies outside the range the model was trained on: "
             "interpret the number with caution."),
    # informational
    FlagSpec("lvh_unknown", _I, "Enter sex, height and weight to get an LVH verdict.",
             "Enter {where} to get an LVH verdict."),
    FlagSpec("link_gaps", _I, "A few samples were lost on the cable link and bridged; the heartbeats around them "
             "were left out of the estimate."),
    FlagSpec("link_unstable", _I, "Link unstable: check the cable between the ECG front-end and this device. "
             "Recordings keep breaking off."),
    FlagSpec("patient_data_conflict", _I, "The file and the entered patient data disagree: check the patient.",
             "The file and the entered patient data disagree ({where}): check the patient."),
    FlagSpec("imputed_age_years", _I, "Age not entered: the model used a typical value."),
    FlagSpec("imputed_height_cm", _I, "Height not entered: the model used a typical value."),
    FlagSpec("imputed_weight_kg", _I, "Weight not entered: the model used a typical value."),
    FlagSpec("imputed_qrs_ms", _I, "QRS duration could not be measured: the model used a typical value."),
    FlagSpec("imputed_p_axis", _I, "P axis could not be measured: the model used a typical value."),
    FlagSpec("imputed_r_axis", _I, "QRS axis could not be measured: the model used a typical value."),
    FlagSpec("imputed_t_axis", _I, "T axis could not be measured: the model used a typical value."),
]

REGISTRY: dict[str, FlagSpec] = {spec.name: spec for spec in _SPECS}
if len(REGISTRY) != len(_SPECS):  # a name registered twice would silently shadow the first entry
    raise RuntimeError("duplicate flag name in the registry")


def spec(name: str) -> FlagSpec:
    """The registered :class:`FlagSpec` of ``name``; ``KeyError`` with the known names when unregistered."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"flag {name!r} is not in the registry (edge_runtime/flags.py)") from None


def names_with(consequence: Consequence) -> frozenset[str]:
    """Every registered flag name with this consequence."""
    return frozenset(name for name, entry in REGISTRY.items() if entry.consequence is consequence)


@dataclass(frozen=True)
class Flag:
    """A finding attached to a window or result.

    Parameters
    ----------
    name : str
        A registered flag name (see :data:`REGISTRY`).
    reason : str
        Developer detail: measurements and thresholds (logs, JSON).
    where : str
        Optional: the electrodes, leads or fields concerned, shown to the operator (e.g. ``"V4"``).
    """

    name: str
    reason: str
    where: str = ""

    def __post_init__(self) -> None:
        spec(self.name)  # refuses unregistered names

    @property
    def consequence(self) -> Consequence:
        return REGISTRY[self.name].consequence

    @property
    def excludes(self) -> bool:
        """True when the window must not feed the model as an in-population example (training's exclusion rule)."""
        return self.consequence is not Consequence.INFO

    @property
    def operator_text(self) -> str:
        entry = REGISTRY[self.name]
        if self.where and entry.operator_text_where:
            return entry.operator_text_where.format(where=self.where)
        return entry.operator_text

    def to_dict(self) -> dict[str, str]:
        out = {"name": self.name, "consequence": self.consequence.value, "operator_text": self.operator_text,
               "reason": self.reason}
        if self.where:
            out["where"] = self.where
        return out
