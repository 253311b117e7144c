"""One in-memory type for an ECG recording, whatever file it came from.

Samples are millivolts, shape ``(n_leads, n_samples)``, float32. Lead names use the standard
spelling ``I, II, III, aVR, aVL, aVF, V1..V6``; a 12-lead record is kept in that order. Records
with fewer or other leads (MIT-BIH's MLII/V1, CPSC's I/II) are allowed for beat detection work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)
LIMB_LEADS: tuple[str, ...] = STANDARD_LEADS[:6]
PRECORDIAL_LEADS: tuple[str, ...] = STANDARD_LEADS[6:]
# The 8 independent leads an ADS1298-class front-end measures; the other 4 follow from I and II.
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

_ALIASES = {name.upper(): name for name in STANDARD_LEADS}
_ALIASES.update({"AVR": "aVR", "AVL": "aVL", "AVF": "aVF", "D1": "I", "D2": "II", "D3": "III",
                 "LEAD I": "I", "LEAD II": "II", "LEAD III": "III"})


# Added by the readers when every lead spans the same peak-to-peak (LUDB 1.0.1's 1 mV scaling):
# the waveform timing is real but the voltages are not, so voltage-based estimates must not be trusted.
NORMALIZED_AMPLITUDE_NOTE = "amplitudes appear normalized per lead; voltages are not physiological"


class RecordError(ValueError):
    """A record cannot be read or is not usable; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


def canonical_lead_name(name: str) -> str:
    """Map a lead label as files spell it (``avr``, ``V1 ``, ``Lead II``) to the standard spelling.

    Unknown labels (``MLII``, ``vx``) are returned stripped but otherwise unchanged.
    """
    stripped = name.strip()
    return _ALIASES.get(stripped.upper(), stripped)


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """Einthoven and Goldberger: III, aVR, aVL, aVF from leads I and II.

    This is the one place the project derives leads (readers, firmware bridge and the synthetic
    cohort all call it).
    """
    lead_iii = lead_ii - lead_i
    return {
        "III": lead_iii,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }


def standard_from_independent(independent: np.ndarray) -> np.ndarray:
    """(8, n) I, II, V1-V6 -> (12, n) in :data:`STANDARD_LEADS` order, the limb leads derived (input dtype)."""
    lead_i, lead_ii = independent[0], independent[1]
    derived = derive_limb_leads(lead_i, lead_ii)
    return np.stack([lead_i, lead_ii, derived["III"], derived["aVR"], derived["aVL"], derived["aVF"], *independent[2:]])


@dataclass(frozen=True)
class PatientContext:
    """What the operator or the file says about the patient. ``None`` means unknown."""

    age_years: float | None = None
    sex: str | None = None  # "M" or "F"
    height_cm: float | None = None
    weight_kg: float | None = None
    patient_id: str | None = None  # pseudonymous only; never a name

    # Plausible adult/clinic ranges; values outside are refused rather than silently used.
    LIMITS = {"age_years": (0.0, 120.0), "height_cm": (50.0, 250.0), "weight_kg": (2.0, 400.0)}

    def problems(self) -> list[str]:
        """Reasons this context is impossible (empty when it is plausible)."""
        found = []
        for name, (low, high) in self.LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
                found.append(f"{name}={value!r} outside the plausible range {low:g}..{high:g}")
        if self.sex is not None and self.sex not in ("M", "F"):
            found.append(f"sex={self.sex!r} is not 'M' or 'F'")
        return found

    def validated(self) -> "PatientContext":
        """Return self, or raise ``ValueError`` listing every impossible value."""
        found = self.problems()
        if found:
            raise ValueError("impossible patient context: " + "; ".join(found))
        return self

    @property
    def bsa_m2(self) -> float | None:
        """Body surface area by Mosteller, sqrt(height_cm * weight_kg / 3600)."""
        if self.height_cm is None or self.weight_kg is None:
            return None
        return math.sqrt(self.height_cm * self.weight_kg / 3600.0)


def normalize_sex(value: object) -> str | None:
    """``'M'``/``'F'`` from the many ways files write sex; ``None`` when unknown."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("m", "male", "man", "1m"):
        return "M"
    if text in ("f", "female", "woman", "w"):
        return "F"
    return None


@dataclass
class EcgRecord:
    """An ECG recording in millivolts with its context.

    Parameters
    ----------
    signals_mv : ndarray, shape (n_leads, n_samples)
        Samples in millivolts, float32.
    fs : float
        Sampling rate in Hz.
    lead_names : tuple of str
        One canonical name per row of ``signals_mv``.
    patient : PatientContext
        Age, sex, height, weight when known.
    measurements : dict
        Cart measurements when the file has them (``qrs_ms``, ``p_axis``, ``r_axis``, ``t_axis``,
        ``pr_ms``, ``qt_ms``, ``qtc_ms``, ``heart_rate``); informational, the model uses our own.
    source : str
        Path or description of where the record came from.
    format : str
        Reader that produced it (``wfdb``, ``muse-xml``, ``hl7-aecg``, ``csv``, ``npy``, ...).
    notes : list of str
        Non-fatal findings while reading (e.g. an implausible age that was dropped).
    """

    signals_mv: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    patient: PatientContext = field(default_factory=PatientContext)
    measurements: dict[str, float] = field(default_factory=dict)
    source: str = "<memory>"
    format: str = "memory"
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        signals = np.asarray(self.signals_mv)
        if signals.ndim != 2:
            raise RecordError(self.source, f"signals must be 2-D (leads x samples), got shape {signals.shape}")
        self.signals_mv = signals.astype(np.float32, copy=False)
        self.lead_names = tuple(canonical_lead_name(name) for name in self.lead_names)
        if len(self.lead_names) != signals.shape[0]:
            raise RecordError(self.source, f"{signals.shape[0]} signal rows but {len(self.lead_names)} lead names")
        if len(set(self.lead_names)) != len(self.lead_names):
            raise RecordError(self.source, f"duplicate lead names {self.lead_names}")
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise RecordError(self.source, f"sampling rate must be positive, got {self.fs!r}")
        if signals.shape[1] == 0:
            raise RecordError(self.source, "record has no samples")
        if not np.all(np.isfinite(self.signals_mv)):
            bad = [self.lead_names[i] for i in np.where(~np.isfinite(self.signals_mv).all(axis=1))[0]]
            raise RecordError(self.source, f"non-finite samples (NaN/inf) in leads {bad or 'some'}")

    @property
    def n_samples(self) -> int:
        return int(self.signals_mv.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def amplitudes_normalized(self) -> bool:
        """True when a reader found per-lead normalized amplitudes (see ``NORMALIZED_AMPLITUDE_NOTE``)."""
        return NORMALIZED_AMPLITUDE_NOTE in self.notes

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples by name (any accepted spelling)."""
        key = canonical_lead_name(name)
        try:
            return self.signals_mv[self.lead_names.index(key)]
        except ValueError:
            raise RecordError(self.source, f"lead {key} not in record (has {', '.join(self.lead_names)})") from None

    def has_standard_12(self) -> bool:
        """True when all 12 standard leads are present or derivable (I and II present)."""
        names = set(self.lead_names)
        independent = {"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"}
        return set(STANDARD_LEADS) <= names or independent <= names

    def to_standard_12(self) -> "EcgRecord":
        """This record with exactly the 12 standard leads in standard order.

        Missing III/aVR/aVL/aVF are derived from I and II; any other missing lead is an error.
        Extra leads (Frank XYZ, ...) are dropped.
        """
        present = dict(zip(self.lead_names, self.signals_mv))
        if all(name in present for name in ("I", "II")):
            for name, values in derive_limb_leads(present["I"], present["II"]).items():
                present.setdefault(name, values)
        missing = [name for name in STANDARD_LEADS if name not in present]
        if missing:
            raise RecordError(self.source, f"missing leads {', '.join(missing)}; a 12-lead record needs I, II and V1-V6")
        stacked = np.stack([present[name] for name in STANDARD_LEADS]).astype(np.float32)
        return dataclasses.replace(self, signals_mv=stacked, lead_names=STANDARD_LEADS)
