"""Recording noise at the electrodes, at a controllable level.

Noise is drawn per electrode (RA, LA, LL, V1-V6) and enters the leads as the leads see it
(I = LA - RA, II = LL - RA, Vk = Vk - mean(RA, LA, LL)), so an electrode-motion artefact on LA
shows in I but not II, as on a real cart. Components follow the MIT-BIH Noise Stress Test
categories (Moody, Muldrow & Mark, Comput Cardiol 1984): baseline wander, muscle (EMG) noise and
electrode motion, plus mains interference at 50 or 60 Hz. ``level`` scales every amplitude:
0 is a clean recording, 1 a typical resting ECG, 3 a poor one.
"""

from __future__ import annotations

import math

import numpy as np

ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")


def electrode_to_lead_matrix() -> np.ndarray:
    """(8, 9) map from electrode potentials to the independent leads I, II, V1-V6."""
    m = np.zeros((8, 9))
    m[0, 1], m[0, 0] = 1.0, -1.0  # I = LA - RA
    m[1, 2], m[1, 0] = 1.0, -1.0  # II = LL - RA
    for k in range(6):
        m[2 + k, 3 + k] = 1.0
        m[2 + k, :3] = -1.0 / 3.0  # Wilson central terminal
    return m


def electrode_noise(n_samples: int, fs: float, rng: np.random.Generator, level: float = 1.0,
                    mains_hz: float = 50.0) -> tuple[np.ndarray, dict]:
    """(9, n) electrode noise in mV and the amplitudes drawn (latents).

    Always consumes the same random draws whatever ``level`` is, so the same subject with a
    different noise level differs only in noise amplitude.
    """
    t = np.arange(n_samples) / fs
    n_e = len(ELECTRODES)
    # baseline wander: a few slow sinusoids per electrode plus a shared respiratory component
    freqs = rng.uniform(0.05, 0.6, size=(n_e, 3))
    phases = rng.uniform(0, 2 * math.pi, size=(n_e, 3))
    wander_amp = rng.uniform(0.01, 0.06, size=(n_e, 3)) * rng.lognormal(0.0, 0.5)
    wander = np.einsum("ek,ekn->en", wander_amp, np.sin(2 * math.pi * freqs[..., None] * t + phases[..., None]))
    resp_f, resp_amp = rng.uniform(0.2, 0.33), rng.uniform(0.0, 0.06)
    wander += resp_amp * rng.uniform(-1, 1, size=(n_e, 1)) * np.sin(2 * math.pi * resp_f * t)
    # mains interference, fundamental and a weaker third harmonic
    mains_amp = rng.uniform(0.0, 0.015)
    mains_phase = rng.uniform(0, 2 * math.pi, size=(n_e, 1))
    mains_gain = rng.uniform(0.3, 1.0, size=(n_e, 1))
    mains = mains_amp * mains_gain * (np.sin(2 * math.pi * mains_hz * t + mains_phase)
                                      + 0.3 * np.sin(2 * math.pi * 3 * mains_hz * t + 3 * mains_phase))
    # EMG: band-limited white noise (first difference, then a 3-tap smoother: ~10-170 Hz at 500 Hz)
    # with a slowly varying envelope
    emg_sd = 0.007 * rng.lognormal(0.0, 0.7)  # from near-clean to a tense patient
    white = rng.normal(size=(n_e, n_samples + 3))
    emg = np.diff(white, axis=1)
    emg = 0.25 * emg[:, :-2] + 0.5 * emg[:, 1:-1] + 0.25 * emg[:, 2:]
    emg /= 0.5  # the combined filter (1, 1, -1, -1)/4 has a white-noise SD gain of 0.5
    envelope = 1.0 + 1.5 * np.clip(np.sin(2 * math.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3)), 0, None)
    emg *= emg_sd * envelope
    # electrode motion: at most one transient (step + exponential recovery) on one electrode
    motion = np.zeros((n_e, n_samples))
    has_motion = rng.random() < 0.35
    motion_electrode = int(rng.integers(n_e))
    onset, tau, step = rng.uniform(0.5, t[-1] - 1.0), rng.uniform(0.15, 0.8), rng.normal(0.0, 0.25)
    if has_motion:
        after = t >= onset
        motion[motion_electrode, after] = step * np.exp(-(t[after] - onset) / tau)
    noise = level * (wander + mains + emg + motion)
    latents = {"noise_level": level, "mains_hz": mains_hz, "mains_mv": level * mains_amp,
               "emg_sd_mv": level * emg_sd, "wander_mv": level * float(wander_amp.mean()),
               "motion_artifact": int(has_motion), "motion_electrode": ELECTRODES[motion_electrode] if has_motion else "",
               "motion_step_mv": level * step if has_motion else 0.0}
    return noise, latents


def lead_noise(n_samples: int, fs: float, rng: np.random.Generator, level: float = 1.0,
               mains_hz: float = 50.0) -> tuple[np.ndarray, dict]:
    """(8, n) noise on the independent leads I, II, V1-V6 (mV) and its latents."""
    noise, latents = electrode_noise(n_samples, fs, rng, level, mains_hz)
    return electrode_to_lead_matrix() @ noise, latents
