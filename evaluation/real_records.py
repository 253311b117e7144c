"""The real 12-lead records of ../shared/data, loaded once as 10 s windows (for metamorphic checks).

cinc2021 (50 records, 10 s, 500 Hz), ptbdb (patient001/s0010_re, 38 s at 1000 Hz: its first 10 s) and the three
valid Philips SierraECG XML examples (10.5 s, 500 Hz). Left out: LUDB, whose amplitudes are normalized lead by
lead (the leads do not obey Einthoven's law, so neither wander on the electrodes nor an electrode swap can be
simulated on it), and the two deliberately invalid Philips files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.record import PatientContext

WINDOW_S = 10.0
PHILIPS_VALID = ("129DYPRG.XML", "2020-5-18_15-48-11.xml", "3191723_ZZDEMOPTONLY_1-04_orig.xml")


@dataclass(frozen=True)
class RealWindow:
    """One record's first 10 s of the 12 standard leads (raw mV) and its patient."""

    name: str
    source_set: str  # the folder of ../shared/data it came from
    signals_mv: np.ndarray
    fs: float
    patient: PatientContext


def default_data_dir() -> Path:
    return Path(os.environ.get("ELVMASS_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def record_paths(data_dir: Path, sets: tuple[str, ...] = ("cinc2021", "ptbdb", "philips-xml")) -> list[Path]:
    """Every real 12-lead record file of ``sets`` under ``data_dir``, sorted by name within each set."""
    paths: list[Path] = []
    if "cinc2021" in sets:
        paths += sorted((data_dir / "cinc2021").glob("*.hea"))
    if "ptbdb" in sets:
        paths += sorted((data_dir / "ptbdb").glob("*.hea"))
    if "philips-xml" in sets:
        paths += [data_dir / "philips-xml" / name for name in PHILIPS_VALID if (data_dir / "philips-xml" / name).is_file()]
    return paths


def load_windows(paths: list[Path], default_patient: PatientContext = PatientContext(age_years=60.0, sex="M")
                 ) -> list[RealWindow]:
    """The first 10 s of each record's 12 standard leads; unknown age/sex take ``default_patient``'s."""
    from edge_runtime.formats import read_record

    windows = []
    for path in paths:
        record = read_record(path)
        standard = record.to_standard_12()
        n = min(standard.signals_mv.shape[1], int(round(WINDOW_S * standard.fs)))
        p = record.patient
        patient = PatientContext(age_years=p.age_years if p.age_years is not None else default_patient.age_years,
                                 sex=p.sex or default_patient.sex, height_cm=p.height_cm, weight_kg=p.weight_kg)
        windows.append(RealWindow(path.stem, path.parent.name, np.asarray(standard.signals_mv[:, :n], dtype=np.float64),
                                  float(standard.fs), patient))
    return windows
