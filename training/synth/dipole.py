"""Gaussian-wave cardiac dipole (vectorcardiogram) in the style of ECGSYN.

Each beat is a sum of Gaussian waves in time, each with a 3-D vector (Frank axes X left, Y feet,
Z back) -- the dynamical VCG model of McSharry et al. (IEEE TBME 2003;50:289) written directly
in time as in Sameni et al. (EURASIP J Adv Signal Process 2007:43407). Waves of a sinus beat:
P, septal q, early and late main forces (R1, R2), terminal S, ST (strain), and an asymmetric T
from two Gaussians. A premature ventricular beat reuses the same slots: no P, a wide QRS of
random direction, a discordant T.
"""

from __future__ import annotations

import math

import numpy as np

from training.synth.phenotype import Phenotype, direction, unit

WAVES: tuple[str, ...] = ("P", "q", "R1", "R2", "S", "ST", "T1", "T2")
BEAT_WINDOW_MS: tuple[float, float] = (-450.0, 800.0)  # evaluated span around each R peak

_P_DIRECTION = unit(np.array([0.5, 0.85, 0.1]))
_SEPTAL_DIRECTION = unit(np.array([-0.45, 0.1, -0.9]))  # rightward and anterior: q in V6, r in V1-V2
_TERMINAL_DIRECTION = unit(np.array([-0.35, -0.45, 0.8]))  # late posterior-superior forces: S waves
_T_DIRECTION = unit(np.array([0.8, 0.45, -0.3]))
_REFERENCE_QRS_MV = 1.55


def sinus_beat_waves(ph: Phenotype, rr_prev_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centers (ms from R), widths (ms) and vectors (mV, (8, 3)) of one sinus beat.

    The QRS loop turns from septal (anterior-right) through an early anterior-left and a late
    posterior-left main force to terminal posterior-superior forces; all four scale with
    ``ph.qrs_mv`` so the loop's shape (and so its measured width) does not depend on its size.
    ``rr_prev_ms`` sets this beat's QT (Framingham correction) so QT follows the rate beat to beat.
    """
    q = ph.qrs_ms
    qrs_onset = -0.45 * q
    qrs_offset = 0.47 * q
    r_dir = direction(ph.frontal_axis_deg, ph.posterior_deg)
    size = ph.qrs_mv / _REFERENCE_QRS_MV
    qt = ph.qtc_ms + 0.154 * (1000.0 - rr_prev_ms)
    t_sigma = 0.11 * qt
    t_peak = qrs_onset + qt - 2.3 * t_sigma
    t_normal = 0.32 * ph.t_gain * size ** 0.3 * _T_DIRECTION
    t_strain = -0.30 * size * r_dir  # repolarization turning away from the QRS vector
    t_vector = (1.0 - ph.strain) * t_normal + ph.strain * t_strain
    centers = np.array([qrs_onset - ph.pr_ms + 50.0, -0.30 * q, -0.07 * q, 0.08 * q, 0.27 * q,
                        qrs_offset + 70.0, t_peak - 0.9 * t_sigma, t_peak])
    sigmas = np.array([20.0, 0.065 * q, 0.09 * q, 0.09 * q, 0.08 * q, 45.0, 1.6 * t_sigma, t_sigma])
    vectors = np.stack([
        0.15 * ph.p_gain * _P_DIRECTION,
        0.11 * ph.qrs_mv * _SEPTAL_DIRECTION,
        0.75 * ph.qrs_mv * direction(ph.frontal_axis_deg + 5.0, ph.posterior_deg - 30.0),
        0.75 * ph.qrs_mv * direction(ph.frontal_axis_deg - 5.0, ph.posterior_deg + 45.0),
        0.25 * ph.qrs_mv * _TERMINAL_DIRECTION,
        -0.15 * size * ph.strain * r_dir,  # down-sloping ST depression where R is tall
        0.45 * t_vector,
        0.75 * t_vector,
    ])
    return centers, sigmas, vectors


def ectopic_beat_waves(ph: Phenotype, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A premature ventricular beat: no P, wide QRS (130-170 ms) in a random direction, discordant T."""
    width = rng.uniform(130.0, 170.0)
    main = unit(rng.normal(size=3)) * ph.qrs_mv * rng.uniform(1.2, 2.0)
    second = unit(rng.normal(size=3)) * ph.qrs_mv * 0.4
    centers = np.array([0.0, -0.2 * width, -0.05 * width, 0.05 * width, 0.25 * width, 0.0, 280.0, 330.0])
    sigmas = np.array([20.0, 0.12 * width, 0.12 * width, 0.12 * width, 0.12 * width, 45.0, 80.0, 55.0])
    vectors = np.stack([np.zeros(3), second, 0.6 * main, 0.6 * main, -second, np.zeros(3), -0.2 * main, -0.3 * main])
    return centers, sigmas, vectors


def beat_schedule(ph: Phenotype, duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """R-peak times (s, may start before 0 and end after ``duration_s``), an ectopic flag per beat, latents.

    Sinus rhythm at ``ph.hr_bpm`` with respiratory sinus arrhythmia and random RR jitter; premature
    ventricular beats come early (coupling 55-75 % of RR) with a full compensatory pause.
    """
    rr_mean = 60.0 / ph.hr_bpm
    rsa = rng.uniform(0.01, 0.05)
    jitter = rng.uniform(0.005, 0.025)
    f_resp = rng.uniform(0.2, 0.33)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    times = [-rng.uniform(0.3, 0.3 + rr_mean)]
    while times[-1] < duration_s + 0.6:
        t = times[-1]
        rr = rr_mean * (1.0 + rsa * math.sin(2.0 * math.pi * f_resp * t + phase) + rng.normal(0.0, jitter))
        times.append(t + rr)
    times_arr = np.array(times)
    ectopic = np.zeros(times_arr.size, dtype=bool)
    inside = np.where((times_arr > 0.4) & (times_arr < duration_s - 0.4))[0]
    inside = inside[(inside > 0) & (inside < times_arr.size - 1)]
    if ph.n_ectopic and inside.size:
        chosen = rng.choice(inside, size=min(ph.n_ectopic, inside.size), replace=False)
        for k in np.sort(chosen):
            if ectopic[k - 1] or (k + 1 < ectopic.size and ectopic[k + 1]):
                continue  # keep ectopic beats isolated
            rr_here = times_arr[k + 1] - times_arr[k - 1]
            times_arr[k] = times_arr[k - 1] + rng.uniform(0.55, 0.75) * rr_here / 2.0
            ectopic[k] = True
    latents = {"rsa_fraction": rsa, "rr_jitter_fraction": jitter, "respiration_hz": f_resp}
    return times_arr, ectopic, latents


def synthesize_vcg(r_times_s: np.ndarray, centers_ms: np.ndarray, sigmas_ms: np.ndarray,
                   vectors_mv: np.ndarray, fs: float, n_samples: int) -> np.ndarray:
    """Sum every beat's Gaussian waves into a (3, n_samples) VCG in mV.

    Parameters
    ----------
    r_times_s : (B,) R-peak times in seconds.
    centers_ms, sigmas_ms : (B, K) wave centers relative to each R peak and widths, ms.
    vectors_mv : (B, K, 3) wave vectors.
    """
    lo_ms, hi_ms = BEAT_WINDOW_MS
    window = int(round((hi_ms - lo_ms) * fs / 1000.0))
    starts = np.floor(r_times_s * fs + lo_ms * fs / 1000.0).astype(int)
    sample_index = starts[:, None] + np.arange(window)[None, :]  # (B, W)
    t_ms = (sample_index / fs - r_times_s[:, None]) * 1000.0  # time from each R peak
    z = (t_ms[:, None, :] - centers_ms[:, :, None]) / sigmas_ms[:, :, None]  # (B, K, W)
    shapes = np.exp(-0.5 * z * z)
    beats = np.einsum("bkw,bkd->bdw", shapes, vectors_mv)  # (B, 3, W)
    vcg = np.zeros((3, n_samples + 2 * window))
    offset = window  # pad so beats hanging over either edge are simply cut
    for b in range(r_times_s.size):
        lo = starts[b] + offset
        if lo < 0 or lo + window > vcg.shape[1]:
            continue
        vcg[:, lo:lo + window] += beats[b]
    return vcg[:, offset:offset + n_samples]


def subject_vcg(ph: Phenotype, fs: float, duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The subject's 10 s VCG (3, n) in mV (heart orientation and body attenuation applied) and rhythm latents."""
    n_samples = int(round(duration_s * fs))
    r_times, ectopic, rhythm_latents = beat_schedule(ph, duration_s, rng)
    resp_amp = rng.uniform(0.02, 0.08)
    resp_phase = rng.uniform(0.0, 2.0 * math.pi)
    all_c, all_s, all_v = [], [], []
    for k, t in enumerate(r_times):
        rr_prev_ms = 1000.0 * (t - r_times[k - 1]) if k > 0 else 60000.0 / ph.hr_bpm
        if ectopic[k]:
            c, s, v = ectopic_beat_waves(ph, rng)
        else:
            c, s, v = sinus_beat_waves(ph, rr_prev_ms)
            v = v.copy()
            v[1:5] *= 1.0 + resp_amp * math.sin(2.0 * math.pi * 0.25 * t + resp_phase)  # breathing
        all_c.append(c)
        all_s.append(s)
        all_v.append(v)
    vectors = np.stack(all_v) @ ph.rotation.T * ph.attenuation
    vcg = synthesize_vcg(r_times, np.stack(all_c), np.stack(all_s), vectors, fs, n_samples)
    inside = (r_times >= 0) & (r_times < duration_s)
    rhythm = {"n_beats": int(inside.sum()), "n_ectopic_in_window": int((ectopic & inside).sum()),
              "mean_rr_ms": float(1000.0 * np.mean(np.diff(r_times))), **rhythm_latents,
              "qrs_amplitude_breathing_fraction": resp_amp}
    return vcg, rhythm
