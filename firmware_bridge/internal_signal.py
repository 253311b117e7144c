"""The front-end's internal test signal as PROTOCOL.md section 8 defines it.

An ADS1298 routes its internal test source to every channel (CHnSET MUX = 101) when CONFIG2 sets
INT_TEST = 1, TEST_AMP = 0 and TEST_FREQ = 01: a square wave of frequency f_CLK / 2^20
(1.953125 Hz with the 2.048 MHz clock), 1 mV in the units the INFO LSB states. The protocol fixes
those values so a host can check a board against them; the emulator and the C reference device
(``firmware/elvmass_device.c``) produce exactly this sequence of codes.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.frames import N_CHANNELS

TEST_SIGNAL_FREQUENCY_HZ = 2.048e6 / 2**20  # 1.953125 Hz: 256 samples per period at 500 Hz
TEST_SIGNAL_AMPLITUDE_MV = 1.0  # the square wave alternates between +1 mV and -1 mV (2 mV peak to peak)
# Half periods elapsed after sample k at rate fs: floor(k * 2 f / fs) = floor(k * 125 / (32 fs)), in integers
# so that the C device computes the same sample as this module.
_HALF_PERIOD_NUM, _HALF_PERIOD_DEN = 125, 32


def internal_signal_amplitude_code(lsb_nv: float) -> int:
    """ADC code of the +1 mV level for a device whose LSB is ``lsb_nv`` nanovolts."""
    return int(np.floor(TEST_SIGNAL_AMPLITUDE_MV * 1e6 / lsb_nv + 0.5))


def internal_test_signal_codes(first_sample: int, count: int, sample_rate_hz: int, lsb_nv: float) -> np.ndarray:
    """Codes of samples ``first_sample .. first_sample + count - 1`` of the test signal.

    Returns
    -------
    ndarray of int64, shape (count, 8)
        The same square wave on every channel: +amplitude in even half periods, -amplitude in odd ones.
    """
    k = first_sample + np.arange(count, dtype=np.int64)
    half_periods = (k * _HALF_PERIOD_NUM) // (_HALF_PERIOD_DEN * int(sample_rate_hz))
    level = np.where(half_periods % 2 == 0, 1, -1) * internal_signal_amplitude_code(lsb_nv)
    return np.repeat(level[:, None], N_CHANNELS, axis=1).astype(np.int64)
