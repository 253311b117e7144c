"""Clinic configuration (interface 6): one small TOML file read with the standard library.

Every key is optional; a missing file means the embedded defaults. Unknown keys and impossible
values are refused with a message naming the file and the key, so a typo never silently falls back
to a default threshold.

Example ``elvmass.toml``::

    mains_hz = 60
    lvh_threshold_male_g_m2 = 72
    lvh_threshold_female_g_m2 = 55
    storage_path = "/var/lib/elvmass/results.sqlite"
    bundle_path = ""          # empty = the bundled demo model
    port = "/dev/ttyUSB0"
    backend = "onnxruntime"   # or "litert"
    precision = "int8"        # or "fp32"
    # Outbox (off while fhir_endpoint is empty): results sent as FHIR R4 to the clinic's server.
    fhir_endpoint = "https://fhir.example-hospital.org/r4"   # https only (http only to 127.0.0.1)
    fhir_token = "..."                                     # bearer token; keep this file 0600
    station_pin_hash = ""     # operator PIN for `elvmass station` (scrypt; make it with: elvmass station --hash-pin)
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("onnxruntime", "litert")
PRECISIONS = ("int8", "fp32")
DEFAULT_STORAGE_PATH = "~/.local/share/elvmass/results.sqlite"


def fhir_endpoint_allowed(url: str) -> bool:
    """True for an https URL with a host, or plain http to 127.0.0.1 (tests only).

    Health data leaves the device only encrypted; loopback never leaves the machine.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return bool(parts.hostname) and (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1"))


class ConfigError(ValueError):
    """The clinic config file is unreadable or holds an impossible value."""


@dataclass(frozen=True)
class ClinicConfig:
    """Site settings; defaults are the paper's LVH thresholds (LVM/BSA, Mosteller)."""

    mains_hz: int = 50
    lvh_threshold_male_g_m2: float = 72.0
    lvh_threshold_female_g_m2: float = 55.0
    storage_path: str = DEFAULT_STORAGE_PATH
    bundle_path: str = ""
    port: str = ""
    backend: str = "onnxruntime"
    precision: str = "int8"
    # FHIR outbox: off while fhir_endpoint is empty (the device stays offline unless configured).
    fhir_endpoint: str = ""
    fhir_token: str = ""
    fhir_patient_id_system: str = "urn:elvmass:patient-id"
    fhir_max_attempts: int = 4
    fhir_backoff_s: float = 1.0
    fhir_timeout_s: float = 10.0
    station_pin_hash: str = ""  # scrypt$N$r$p$salt$hash; required before the station listens beyond localhost

    def lvh_threshold_g_m2(self, sex: str | None) -> float | None:
        """The indexed-LVM threshold for ``sex`` ('M'/'F'); ``None`` when sex is unknown."""
        if sex == "M":
            return self.lvh_threshold_male_g_m2
        if sex == "F":
            return self.lvh_threshold_female_g_m2
        return None

    @property
    def storage_file(self) -> Path:
        """``storage_path`` with ``~`` and environment variables expanded."""
        return Path(os.path.expandvars(os.path.expanduser(self.storage_path)))

    def problems(self) -> list[str]:
        """Every impossible value (empty list when the config is usable)."""
        found = []
        if self.mains_hz not in (50, 60):
            found.append(f"mains_hz={self.mains_hz!r} must be 50 or 60")
        for name in ("lvh_threshold_male_g_m2", "lvh_threshold_female_g_m2"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 20.0 <= value <= 200.0:
                found.append(f"{name}={value!r} outside the plausible range 20..200 g/m2")
        if self.backend not in BACKENDS:
            found.append(f"backend={self.backend!r} must be one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            found.append(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if not self.storage_path.strip():
            found.append("storage_path is empty")
        if self.station_pin_hash and not self.station_pin_hash.startswith("scrypt$"):
            found.append("station_pin_hash must be the scrypt$... line printed by 'elvmass station --hash-pin', never the PIN")
        found.extend(self._fhir_problems())
        return found

    def _fhir_problems(self) -> list[str]:
        found = []
        if self.fhir_endpoint and not fhir_endpoint_allowed(self.fhir_endpoint):
            found.append(f"fhir_endpoint={self.fhir_endpoint!r} must be an https:// URL (http:// only to 127.0.0.1)")
        if not 1 <= self.fhir_max_attempts <= 10:
            found.append(f"fhir_max_attempts={self.fhir_max_attempts!r} outside 1..10")
        if not (math.isfinite(self.fhir_backoff_s) and 0.0 <= self.fhir_backoff_s <= 60.0):
            found.append(f"fhir_backoff_s={self.fhir_backoff_s!r} outside 0..60 s")
        if not (math.isfinite(self.fhir_timeout_s) and 0.1 <= self.fhir_timeout_s <= 120.0):
            found.append(f"fhir_timeout_s={self.fhir_timeout_s!r} outside 0.1..120 s")
        if any(ch in self.fhir_token for ch in "\r\n"):
            found.append("fhir_token holds a line break")
        return found


_TYPES = {field.name: field.type for field in dataclasses.fields(ClinicConfig)}


def _coerce(source: str, key: str, value: object) -> object:
    expected = _TYPES[key]
    if expected == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if expected == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    return value


def config_from_dict(values: dict, source: str = "<config>") -> ClinicConfig:
    """Build and validate a :class:`ClinicConfig` from a mapping (e.g. parsed TOML).

    Raises
    ------
    ConfigError
        On an unknown key, a wrong type or an impossible value.
    """
    unknown = sorted(set(values) - set(_TYPES))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_TYPES)}")
    config = ClinicConfig(**{key: _coerce(source, key, value) for key, value in values.items()})
    found = config.problems()
    if found:
        raise ConfigError(f"{source}: " + "; ".join(found))
    return config


def load_config(path: str | Path | None = None) -> ClinicConfig:
    """Read the clinic config TOML file; ``None`` gives the embedded defaults.

    Parameters
    ----------
    path : str or Path, optional
        The TOML file. It must exist when given.

    Returns
    -------
    ClinicConfig
        Validated settings.

    Raises
    ------
    ConfigError
        When the file is missing, is not valid TOML, or holds an unknown key or impossible value.
    """
    if path is None:
        return ClinicConfig()
    path = Path(path)
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    return config_from_dict(values, source=str(path))
