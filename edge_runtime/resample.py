"""Resampling records to the model's rate (500 Hz) with a polyphase anti-aliasing filter."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from edge_runtime.record import EcgRecord


def resample_signals(signals: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample ``(n_leads, n_samples)`` from ``fs_in`` to ``fs_out`` Hz (rational polyphase)."""
    if fs_in <= 0 or fs_out <= 0:
        raise ValueError(f"sampling rates must be positive, got {fs_in} -> {fs_out}")
    if fs_in == fs_out:
        return np.asarray(signals, dtype=np.float32)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    out = resample_poly(np.asarray(signals, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)


def resample_record(record: EcgRecord, fs_out: float = 500.0) -> EcgRecord:
    """The same record at ``fs_out`` Hz (unchanged when already there)."""
    if record.fs == fs_out:
        return record
    return dataclasses.replace(record, signals_mv=resample_signals(record.signals_mv, record.fs, fs_out), fs=float(fs_out))
