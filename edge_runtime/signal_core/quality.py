"""Quality and out-of-population guards: each a named flag with a human-readable reason.

Flags (``Flag.name``, registered in :mod:`edge_runtime.flags`): ``lead_off`` (flat lead), ``saturation`` (clipping plateau),
``noise`` (beats disagree with their median beat), ``too_few_beats``, ``inconsistent_morphology``
(the middle beat is not the window's dominant morphology, e.g. an ectopic beat),
``af_suspected``, ``wide_qrs`` (QRS >= 120 ms, bundle-branch-block suspicion), ``pacing``
(pacemaker spikes), ``no_delineation`` (fewer than the 12 leads: no axes). What each flag does to the estimate and what
the operator reads is in the one registry, :mod:`edge_runtime.flags`.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.flags import Flag
from edge_runtime.signal_core.median import small_median

FLAT_BLOCK_S = 1.0
FLAT_PTP_MV = 0.01
SATURATION_RUN_S = 0.016
NOISE_RATIO = 0.15
MIN_BEATS = 3
MORPHOLOGY_CORRELATION = 0.85
WIDE_QRS_MS = 120.0
PACING_HALF_WIDTH_S = 0.002
PACING_SPIKE_FRACTION = 0.25
SPIKE_OUTLIER_SD = 6.0


def flat_leads(signals: np.ndarray, fs: float, lead_names: tuple[str, ...]) -> Flag | None:
    """Leads that are flat (peak-to-peak below 0.01 mV) over any whole 1 s block: lead off."""
    block = max(1, int(round(FLAT_BLOCK_S * fs)))
    n_blocks = signals.shape[1] // block
    if n_blocks == 0:
        spans = np.ptp(signals, axis=1, keepdims=True)
    else:
        blocks = signals[:, :n_blocks * block].reshape(signals.shape[0], n_blocks, block)
        spans = np.ptp(blocks, axis=2)
    flat = np.flatnonzero((spans < FLAT_PTP_MV).any(axis=1))
    if flat.size == 0:
        return None
    names = ", ".join(lead_names[i] for i in flat)
    return Flag("lead_off", f"flat signal (< {FLAT_PTP_MV} mV peak-to-peak for >= {FLAT_BLOCK_S:g} s) in {names}",
                where=names)


def saturated_leads(signals: np.ndarray, fs: float, lead_names: tuple[str, ...]) -> Flag | None:
    """Leads clipped at the amplifier's range: >= 16 ms of identical samples at the lead's extreme.

    A saturated front end outputs the same ADC code for as long as the input stays beyond its rail,
    so clipping looks like a run of *identical* samples (not merely close ones) at the lead's
    largest or smallest value. Only an extreme on the lead's dominant side counts (at least half as
    far from the median as the other extreme): a flat, quantized ST segment that happens to be a
    small lead's maximum is not clipping. Wander or drift added to a recording moves every sample,
    so a quantized flat stretch that the wander made the lead's extreme is not taken for a rail
    (issue 16, ``elvmass bench-baseline``). Where the device announced its ADC full scale the
    runtime also checks the rails themselves (``runtime.session.railed_leads``).

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n)
        Raw samples (mV), before any filtering or resampling.
    fs : float
        Sampling rate, Hz.
    lead_names : tuple of str
        Names of the rows.

    Returns
    -------
    Flag or None
    """
    run = max(3, int(round(SATURATION_RUN_S * fs)))
    found: list[str] = []
    leads: list[str] = []
    highs, lows = signals.max(axis=1), signals.min(axis=1)
    at_high = signals == highs[:, None]
    at_low = signals == lows[:, None]
    candidates = np.flatnonzero((at_high.sum(axis=1) >= run) | (at_low.sum(axis=1) >= run))
    for i in candidates:  # rare: only leads that touch their extreme for >= run samples in total
        median = float(np.median(signals[i]))
        reach = max(highs[i] - median, median - lows[i])
        for extreme, at_extreme in ((highs[i], at_high[i]), (lows[i], at_low[i])):
            if reach <= 0 or abs(extreme - median) < 0.5 * reach:
                continue
            csum = np.concatenate([[0], np.cumsum(at_extreme)])
            if np.any(csum[run:] - csum[:-run] == run):
                found.append(f"{lead_names[i]} at {extreme:+.2f} mV")
                leads.append(lead_names[i])
                break
    if not found:
        return None
    return Flag("saturation", f"clipped plateau (>= {run} identical samples at the extreme) in " + "; ".join(found),
                where=", ".join(leads))


def _spike_events(steep: np.ndarray, left: np.ndarray, right: np.ndarray, h: int, fs: float) -> np.ndarray:
    """Sample indices of spike events: steep samples standing out on the same side, merged within 10 ms."""
    # Columns where any lead is steep on the same side, ascending: what np.unique of the nonzero columns
    # gives, without the slow 2-D nonzero (the products are the same float multiplications, all computed).
    same_side = steep & (left * right > 0)
    return _merged_events(h + np.flatnonzero(same_side.any(axis=0)), fs)


def _merged_events(spike_samples: np.ndarray, fs: float) -> np.ndarray:
    """The first of each run of ascending spike samples closer than 10 ms to the previous one."""
    if spike_samples.size < 2:
        return spike_samples
    starts = np.concatenate([[True], np.diff(spike_samples) > int(0.010 * fs)])
    return spike_samples[starts]


def pacing_spikes(signals: np.ndarray, fs: float, qrs_amplitude: np.ndarray,
                  r_peaks: np.ndarray) -> Flag | None:
    """Pacemaker spikes: deflections a few ms wide, far narrower than any ECG wave.

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n)
        Unfiltered signals at the front-end's own rate (the band-pass, and resampling, would smear the spikes).
    fs : float
        That rate.
    qrs_amplitude : ndarray, shape (n_leads,)
        Peak-to-peak of each lead's median (conditioned) beat: the scale a spike is compared with.
    r_peaks : ndarray of int
        R peaks (indices into ``signals`` at ``fs``; the conditioning delay of ~10 ms is immaterial here).

    Notes
    -----
    Spike strength at sample n is how far x[n] stands out from both x[n - h] and x[n + h]
    (h = 2 ms): a wave wider than ~4 ms barely differs over 2 ms, a pacing spike differs by most
    of its height. Measured on real recordings (mitdb, cinc2021, ludb) the strength stays below
    0.1 of the QRS amplitude. Spikes above ``PACING_SPIKE_FRACTION`` in the 250 ms before at least
    half the beats flag ``pacing``; as many spikes not locked to the beats flag ``noise`` when they
    are also outliers of the lead's own sample-to-sample noise (``SPIKE_OUTLIER_SD`` robust SDs,
    1.4826 x median absolute value, of ``x[n] - x[n - h]``): dense broadband muscle noise is not a
    train of impulsive artefacts. The spikes of MIT-BIH's paced records were low-pass
    filtered at recording (about 10 ms wide) and are *not* caught by this test; those windows
    are excluded by the wide-QRS guard (see docs/signal.md).
    """
    h = max(1, int(round(PACING_HALF_WIDTH_S * fs)))
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    if signals.shape[1] <= 2 * h or r_peaks.size == 0:
        return None
    # Scale: small leads (III, aVL) are judged against the typical lead's QRS, so a tiny glitch is no spike.
    scale = np.maximum(qrs_amplitude, max(float(small_median(qrs_amplitude)), 0.05)).astype(signals.dtype)
    # a spike stands out from both neighbours, on the same side, by at least the limit
    limit = (PACING_SPIKE_FRACTION * scale)[:, None]
    # |x[n] - x[n-h]| and |x[n] - x[n+h]| are one array of |x[m+h] - x[m]| read at two offsets: IEEE
    # subtraction is exact up to one rounding that is symmetric in sign, so |a - b| == |b - a| bit for bit;
    # one subtraction and one abs instead of two each (the signed differences are only needed below).
    step = signals[:, h:] - signals[:, :-h]
    np.abs(step, out=step)
    steep = step[:, :-h] >= limit  # |left|
    steep &= step[:, h:] >= limit  # |right|
    columns = np.flatnonzero(steep.any(axis=0))
    if columns.size == 0:  # the usual window: nothing steep, so fewer than 2 spikes (below)
        return None
    # _spike_events(steep, left, right, h, fs) with the signed differences taken at the few steep columns only
    centre = signals[:, columns + h]
    left_at = centre - signals[:, columns]   # x[n] - x[n-h]
    right_at = centre - signals[:, columns + 2 * h]   # x[n] - x[n+h]
    events = _merged_events(h + columns[(steep[:, columns] & (left_at * right_at > 0)).any(axis=0)], fs)
    if events.size < 2:
        return None
    # A pacemaker fires once per paced beat, just before its P wave or QRS complex.
    lead = np.searchsorted(events, r_peaks - int(0.25 * fs))
    before = np.searchsorted(events, r_peaks + int(0.02 * fs))
    paced_beats = int(np.count_nonzero(before > lead))
    if paced_beats >= max(2, len(r_peaks) / 2) and events.size <= 2.5 * len(r_peaks):
        return Flag("pacing", f"narrow spikes (< {2 * PACING_HALF_WIDTH_S * 1000:g} ms wide, >= "
                                     f"{PACING_SPIKE_FRACTION:g} of the QRS amplitude) before {paced_beats} of "
                                     f"{len(r_peaks)} beats")
    # Impulsive artefacts are outliers of the lead's own sample-to-sample noise; dense broadband muscle
    # noise (EMG) is not a train of artefacts: at 30 uV SD it crossed the QRS-relative limit on half the
    # real records and refused them, while the beats the model sees (40 Hz low-pass) barely changed
    # (issue 16; docs/signal.md, Guards). The residual test of template_checks judges that noise.
    left = signals[:, h:-h] - signals[:, :-2 * h]   # x[n] - x[n-h]
    right = signals[:, h:-h] - signals[:, 2 * h:]   # x[n] - x[n+h]
    background = 1.4826 * np.median(np.abs(left), axis=1)[:, None]
    outlier = steep & (np.abs(left) >= SPIKE_OUTLIER_SD * background) & (np.abs(right) >= SPIKE_OUTLIER_SD * background)
    artefacts = _spike_events(outlier, left, right, h, fs)
    if artefacts.size >= max(2, len(r_peaks) / 2):
        return Flag("noise", f"{artefacts.size} narrow spikes not locked to the beats (impulsive artefacts)")
    return None


def template_checks(beats: np.ndarray, template: np.ndarray, middle_beat: int | None, fs: float,
                    beat_pre: int) -> list[Flag]:
    """Noise and morphology flags from the beats' agreement with their median beat ``template``."""
    flags: list[Flag] = []
    if beats.shape[0] < MIN_BEATS or middle_beat is None:
        return flags
    residual = beats - template[None]
    span = np.ptp(template, axis=1)
    np.multiply(residual, residual, out=residual)  # squared in place: same values, same layout, same sums
    rms = np.sqrt(np.mean(residual, axis=(0, 2)))
    ratio = rms / np.maximum(span, 1e-3)
    median_ratio = small_median(ratio)
    if median_ratio > NOISE_RATIO:
        flags.append(Flag("noise", f"beat-to-beat residual is {median_ratio:.2f} of the median beat's "
                                          f"amplitude (median over leads; limit {NOISE_RATIO})"))
    half = int(round(0.1 * fs))
    lo, hi = max(0, beat_pre - half), min(beats.shape[2], beat_pre + half)
    qrs = beats[:, :, lo:hi].reshape(beats.shape[0], -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    ref = template[:, lo:hi].ravel()
    ref = ref - ref.mean()
    # np.linalg.norm's own arithmetic (sqrt of the summed squares; ref.dot(ref) for the vector) without its copies
    denom = np.sqrt(np.add.reduce(qrs * qrs, axis=1)) * np.sqrt(ref.dot(ref))
    corr = np.where(denom > 0, qrs @ ref / np.maximum(denom, 1e-12), 0.0)
    if corr[middle_beat] < MORPHOLOGY_CORRELATION:
        flags.append(Flag("inconsistent_morphology",
                                 f"middle beat's QRS correlates {corr[middle_beat]:.2f} with the median beat "
                                 f"(limit {MORPHOLOGY_CORRELATION}): ectopic or artefact"))
    elif np.mean(corr < MORPHOLOGY_CORRELATION) > 0.5:
        flags.append(Flag("inconsistent_morphology",
                                 f"{np.mean(corr < MORPHOLOGY_CORRELATION):.0%} of beats differ from the median beat"))
    return flags
