"""What the device meets, applied to RAW ECGs before the one shared preprocessing.

Training copies of each record get baseline wander, mains interference, EMG, electrode/amplifier
gain tolerance and lead-placement variation, and are then analyzed by
:func:`edge_runtime.preprocess.analyze_record` exactly like every other record (preprocessing is
never reimplemented here). The same generators drive the metamorphic checks of
``elvmass metamorphic`` (evaluation/metamorphic.py).

Every transform works on the 8 independent leads (I, II, V1-V6); III, aVR, aVL and aVF are then
derived again (:func:`edge_runtime.record.derive_limb_leads`), so Einthoven's and Goldberger's
relations hold as on a real cart. Amplitudes (defaults of :class:`AugmentConfig`):

* baseline wander: two sinusoids of 0.05-0.5 Hz per lead, up to 0.3 mV (respiration, electrode
  drift; the AHA/IEC low-frequency band the signal core must remove);
* mains: 50 or 60 Hz plus a third harmonic, up to 50 uV per lead;
* EMG: high-passed white noise, SD up to 30 uV, with a slow envelope (a tense patient);
* gain tolerance: each lead x LogNormal(0, 0.05) (IEC 60601-2-25 asks for +-5 % gain accuracy);
* lead placement: each chest lead moves towards a neighbour by up to 20 % of the way (an
  electrode one intercostal space or a few cm off); limb electrodes are not moved.

No global amplitude scaling: QRS voltage is the signal the model must keep responding to.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, EcgRecord, derive_limb_leads


@dataclass(frozen=True)
class AugmentConfig:
    """Largest amplitude of each nuisance; each is applied with probability ``p_each``."""

    wander_mv: float = 0.3
    mains_mv: float = 0.05
    emg_sd_mv: float = 0.03
    gain_log_sd: float = 0.05
    placement_mix: float = 0.2
    p_each: float = 0.7

    def to_dict(self) -> dict:
        return asdict(self)


def baseline_wander(n_leads: int, n: int, fs: float, rng: np.random.Generator, amplitude_mv: float) -> np.ndarray:
    """(n_leads, n) sum of two slow sinusoids (0.05-0.5 Hz) per lead, peak up to ``amplitude_mv``."""
    t = np.arange(n) / fs
    freqs = rng.uniform(0.05, 0.5, size=(n_leads, 2, 1))
    phases = rng.uniform(0.0, 2 * math.pi, size=(n_leads, 2, 1))
    amps = rng.uniform(0.3, 1.0, size=(n_leads, 2, 1)) * amplitude_mv / 2.0
    return np.sum(amps * np.sin(2 * math.pi * freqs * t + phases), axis=1)


def mains_interference(n_leads: int, n: int, fs: float, rng: np.random.Generator, amplitude_mv: float,
                       mains_hz: float) -> np.ndarray:
    """(n_leads, n) mains at ``mains_hz`` (+ 30 % third harmonic), per-lead amplitude up to ``amplitude_mv``."""
    t = np.arange(n) / fs
    phase = rng.uniform(0.0, 2 * math.pi, size=(n_leads, 1))
    amp = rng.uniform(0.5, 1.0, size=(n_leads, 1)) * amplitude_mv
    return amp * (np.sin(2 * math.pi * mains_hz * t + phase) + 0.3 * np.sin(2 * math.pi * 3 * mains_hz * t + 3 * phase))


def emg_noise(n_leads: int, n: int, fs: float, rng: np.random.Generator, sd_mv: float) -> np.ndarray:
    """(n_leads, n) high-passed white noise with SD ``sd_mv`` and a slow envelope (muscle tremor)."""
    white = np.diff(rng.normal(size=(n_leads, n + 1)), axis=1) / math.sqrt(2.0)
    t = np.arange(n) / fs
    envelope = 1.0 + 0.5 * np.sin(2 * math.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * math.pi))
    return sd_mv * white * envelope / np.sqrt(np.mean(envelope ** 2))


def placement_variation(precordial: np.ndarray, rng: np.random.Generator, max_mix: float) -> np.ndarray:
    """Each chest lead moved towards a random neighbour by up to ``max_mix`` of the way (linear interpolation)."""
    out = precordial.copy()
    for k in range(precordial.shape[0]):
        neighbour = k + (1 if k == 0 or (k < precordial.shape[0] - 1 and rng.random() < 0.5) else -1)
        mix = rng.uniform(0.0, max_mix)
        out[k] = (1.0 - mix) * precordial[k] + mix * precordial[neighbour]
    return out


def independent_leads(record: EcgRecord) -> np.ndarray:
    """(8, n) I, II, V1-V6 of a record that has them (mV)."""
    missing = [name for name in INDEPENDENT_LEADS if name not in record.lead_names]
    if missing:
        raise ValueError(f"{record.source}: augmentation needs leads {', '.join(missing)}")
    return np.stack([record.lead(name) for name in INDEPENDENT_LEADS]).astype(np.float64)


def with_independent_leads(record: EcgRecord, independent: np.ndarray) -> EcgRecord:
    """A copy of ``record`` (standard 12 leads) rebuilt from new I, II, V1-V6 (limb leads derived again)."""
    rows = dict(zip(INDEPENDENT_LEADS, independent))
    rows.update(derive_limb_leads(rows["I"], rows["II"]))
    signals = np.stack([rows[name] for name in STANDARD_LEADS]).astype(np.float32)
    return EcgRecord(signals, record.fs, STANDARD_LEADS, patient=record.patient, measurements=dict(record.measurements),
                     source=record.source, notes=list(record.notes))


def augment_record(record: EcgRecord, rng: np.random.Generator, config: AugmentConfig = AugmentConfig(),
                   mains_hz: float | None = None) -> EcgRecord:
    """One randomly augmented copy of a 12-lead record (raw signal; preprocess it as any record).

    ``mains_hz`` None draws 50 or 60 Hz per copy.
    """
    x = independent_leads(record)
    n_leads, n = x.shape
    if rng.random() < config.p_each:
        x[2:] = placement_variation(x[2:], rng, config.placement_mix)
    if rng.random() < config.p_each:
        x *= np.exp(rng.normal(0.0, config.gain_log_sd, size=(n_leads, 1)))
    if rng.random() < config.p_each:
        x += baseline_wander(n_leads, n, record.fs, rng, rng.uniform(0.0, config.wander_mv))
    if rng.random() < config.p_each:
        hz = mains_hz if mains_hz is not None else float(rng.choice([50.0, 60.0]))
        if hz < record.fs / 2:
            x += mains_interference(n_leads, n, record.fs, rng, rng.uniform(0.0, config.mains_mv), hz)
    if rng.random() < config.p_each:
        x += emg_noise(n_leads, n, record.fs, rng, rng.uniform(0.0, config.emg_sd_mv))
    return with_independent_leads(record, x)
