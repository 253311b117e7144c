"""Streaming per-lead rail mask: where a lead sits at its front end's rail (issue 16, fifth pass).

A saturated front end outputs one ADC code for as long as its input stays beyond the rail, so a
railed stretch is a run of identical samples at the lead's extreme. The window guard
(:func:`edge_runtime.signal_core.quality.saturated_leads`) flags such runs of >= ``SATURATION_RUN_S``
on the lead's dominant side; this module marks them sample by sample, causally, for the R-peak
detector: a run of at least that many identical raw samples whose value is at or beyond every
earlier sample of the lead (nothing passes a rail, so a railed code is the lead's running extreme)
and at least half as far from the lead's level (the mean of its earlier samples) as the other
extreme. Runs starting within ``history_s`` of the stream start are not taken for rails (too few
samples to know the lead's range). The detector drops a railed lead over the run plus a margin
before and after it (the step into the rail rings through the conditioning filter, and a front end
coming off its rail takes a while to recover) and lets the other leads carry the detection.

A sample's mask is final ``lag`` samples after it (a run must last ``SATURATION_RUN_S`` before it
counts, and the margin before it reaches back): the detector holds its features back that long,
so batch and streaming use the same mask.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.signal_core.quality import SATURATION_RUN_S


class RailTracker:
    """Chunk-invariant per-lead mask of railed samples.

    Parameters
    ----------
    fs : float
        Sampling rate of the raw samples, Hz.
    n_leads : int
        Rows of every chunk.
    before_s, after_s : float
        Stretch masked before and after a railed run, seconds.
    history_s : float
        Runs starting earlier than this after the stream start are not rails.
    """

    def __init__(self, fs: float, n_leads: int, before_s: float, after_s: float, history_s: float) -> None:
        self.run = max(3, int(round(SATURATION_RUN_S * fs)))
        self.before = int(round(before_s * fs))
        self.after = int(round(after_s * fs))
        self.history = int(round(history_s * fs))
        self.lag = self.run + self.before
        self.n_seen = 0
        # the last run - 1 samples (a run may continue into the next chunk), and the extremes and sum of
        # every sample before them
        self._tail = np.zeros((n_leads, 0))
        self._high = np.full(n_leads, -np.inf)
        self._low = np.full(n_leads, np.inf)
        self._sum = np.zeros(n_leads)
        self.intervals: list[list[tuple[int, int]]] = [[] for _ in range(n_leads)]  # railed [start, stop)

    def process(self, raw: np.ndarray) -> None:
        """Feed raw samples ``(n_leads, n)`` (the same samples the conditioned stream came from)."""
        n = raw.shape[1]
        if n == 0:
            return
        y = np.concatenate([self._tail, raw], axis=1)
        first = self.n_seen - self._tail.shape[1]  # absolute index of y[:, 0]
        # windows of `run` identical samples (common in quantized flat stretches; only few are at an extreme)
        flat = _all_in_windows(y[:, 1:] == y[:, :-1], self.run - 1)
        if flat.shape[1]:
            if first < self.history:
                flat[:, :max(0, self.history - first)] = False
            rows, cols = np.nonzero(flat)
            if rows.size:
                # cheap first cut: a window at the extreme is at least as far out as every whole block
                # of `run` samples before it
                rows, cols = self._beyond_blocks(y, rows, cols)
            for lead in np.unique(rows).tolist():
                self._record(lead, y[lead], cols[rows == lead], first)
        keep = min(self.run - 1, y.shape[1])
        head = y[:, :y.shape[1] - keep]
        if head.shape[1]:
            self._high = np.maximum(self._high, head.max(axis=1))
            self._low = np.minimum(self._low, head.min(axis=1))
            self._sum = self._sum + head.sum(axis=1)
        self._tail = y[:, y.shape[1] - keep:]
        self.n_seen += n

    def _beyond_blocks(self, y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows ``(rows, cols)`` at or beyond the extremes of the whole blocks of ``run`` samples before them."""
        end = y.shape[1] // self.run * self.run
        block_high = block_low = y[:, 0:end:self.run]
        for j in range(1, self.run):  # strided: faster than reducing a reshaped last axis of `run`
            block_high = np.maximum(block_high, y[:, j:end:self.run])
            block_low = np.minimum(block_low, y[:, j:end:self.run])
        high = np.maximum.accumulate(np.concatenate([self._high[:, None], block_high], axis=1), axis=1)
        low = np.minimum.accumulate(np.concatenate([self._low[:, None], block_low], axis=1), axis=1)
        index = cols // self.run  # whole blocks before the window
        value = y[rows, cols]
        keep = (value >= high[rows, index]) | (value <= low[rows, index])
        return rows[keep], cols[keep]

    def _record(self, lead: int, y: np.ndarray, windows: np.ndarray, first: int) -> None:
        """Add the flat windows (starting at ``y[windows]``) at the lead's extreme, on its dominant side."""
        # extremes and sum of every sample before each window: per segment between window starts, then running
        bounds = np.concatenate([[0], windows]) if windows[0] > 0 else windows
        segment_high = np.maximum.accumulate(np.maximum.reduceat(y, bounds))
        segment_low = np.minimum.accumulate(np.minimum.reduceat(y, bounds))
        segment_sum = np.cumsum(np.add.reduceat(y, bounds))
        shift = 1 if windows[0] > 0 else 0  # segments before window j: bounds[:j + shift]
        before = np.arange(windows.size) + shift - 1  # index of the last segment before each window, -1: none
        has = before >= 0
        high = np.where(has, np.maximum(self._high[lead], segment_high[np.maximum(before, 0)]), self._high[lead])
        low = np.where(has, np.minimum(self._low[lead], segment_low[np.maximum(before, 0)]), self._low[lead])
        total = self._sum[lead] + np.where(has, segment_sum[np.maximum(before, 0)], 0.0)
        value = y[windows]
        level = total / np.maximum(first + windows, 1)
        with np.errstate(invalid="ignore"):
            up = (value >= high) & (value > level) & (value - level >= 0.5 * (level - low))
            down = (value <= low) & (value < level) & (level - value >= 0.5 * (high - level))
        for i in windows[up | down].tolist():
            self._add(lead, first + i, first + i + self.run)

    def _add(self, lead: int, start: int, stop: int) -> None:
        runs = self.intervals[lead]
        if runs and runs[-1][1] >= start:
            runs[-1] = (runs[-1][0], max(runs[-1][1], stop))
        else:
            runs.append((start, stop))

    @property
    def final(self) -> int:
        """Samples before this absolute index have their final mask."""
        return max(0, self.n_seen - self.lag)

    def live(self, lo: int, hi: int) -> np.ndarray | None:
        """``(n_leads, hi - lo)`` bool: True where the lead is not railed (nor within the margins of a rail);
        None when no lead is railed there."""
        out = None
        for lead, runs in enumerate(self.intervals):
            for start, stop in runs:
                a, b = max(lo, start - self.before), min(hi, stop + self.after)
                if b > a:
                    if out is None:
                        out = np.ones((len(self.intervals), hi - lo), dtype=bool)
                    out[lead, a - lo:b - lo] = False
            # runs ended long ago can no longer mask anything still to come
            self.intervals[lead] = [(s, e) for s, e in runs if e + self.after > lo]
        return out


def _all_in_windows(pairs: np.ndarray, k: int) -> np.ndarray:
    """``out[:, i] = pairs[:, i:i + k].all(axis=1)``, by doubling the window (a few passes, no cumsum)."""
    if pairs.shape[1] < k:
        return pairs[:, :0]
    have = 1
    while have * 2 <= k:
        pairs = pairs[:, :pairs.shape[1] - have] & pairs[:, have:]
        have *= 2
    if have < k:  # the rest is at most `have`: two overlapping windows of `have` cover k
        rest = k - have
        pairs = pairs[:, :pairs.shape[1] - rest] & pairs[:, rest:]
    return pairs
