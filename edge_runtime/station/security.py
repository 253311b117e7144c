"""Operator PIN (scrypt, stored hashed in the clinic config), sessions, CSRF tokens and the login rate limit.

Nothing here imports the web framework, so the CLI can hash a PIN and refuse a LAN bind without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

# scrypt cost: 2**14 x 8 x 1 needs 16 MiB and ~50 ms on a Pi 4; fixed in the stored string so it can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
PIN_MIN_LENGTH = 4
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class PinError(ValueError):
    """A PIN that is too short, or a stored hash that cannot be read."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) for the clinic config's ``station_pin_hash``.

    Parameters
    ----------
    pin : str
        The operator PIN or password (at least 4 characters).
    salt : bytes, optional
        16 random bytes by default.

    Returns
    -------
    str
    """
    if len(pin) < PIN_MIN_LENGTH:
        raise PinError(f"the PIN must have at least {PIN_MIN_LENGTH} characters")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_pin_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """The parts of a stored hash; :class:`PinError` naming what is wrong."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PinError("station_pin_hash must look like scrypt$N$r$p$salt$hash (make one with: elvmass station --hash-pin)")
    try:
        n, r, p = (int(value) for value in parts[1:4])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise PinError("station_pin_hash is damaged (not numbers and base64); make a new one with "
                       "elvmass station --hash-pin") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or len(salt) < 8 or len(digest) < 16:
        raise PinError("station_pin_hash has impossible scrypt parameters; make a new one with elvmass station --hash-pin")
    return n, r, p, salt, digest


def verify_pin(pin: str, stored: str) -> bool:
    """True when ``pin`` matches the stored hash (constant-time comparison)."""
    n, r, p, salt, digest = parse_pin_hash(stored)
    candidate = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 << 20)
    return hmac.compare_digest(candidate, digest)


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def bind_refusal(host: str, pin_hash: str) -> str | None:
    """Why the station must not listen on ``host``, or ``None`` when it may."""
    if pin_hash:
        try:
            parse_pin_hash(pin_hash)
        except PinError as error:
            return f"the clinic config's {error}"
        return None
    if is_loopback(host):
        return None
    return (f"refusing to listen on {host}: other machines could reach patient data, so an operator PIN is required. "
            "Make one with 'elvmass station --hash-pin', put the line it prints as station_pin_hash in the clinic "
            "config and pass --config; or keep the default --host 127.0.0.1")


@dataclass
class Session:
    """One browser's session: its CSRF token and whether it has logged in."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    authenticated: bool = False
    last_seen: float = field(default_factory=time.monotonic)


class SessionStore:
    """Server-side sessions keyed by a random cookie value; idle ones expire.

    Parameters
    ----------
    idle_timeout_s : float
        A session unused this long is forgotten (the operator logs in again).
    max_sessions : int
        Oldest sessions are dropped beyond this (a flood of cookie-less requests cannot grow memory).
    """

    def __init__(self, idle_timeout_s: float = 8 * 3600.0, max_sessions: int = 256) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, key: str | None) -> Session | None:
        if not key:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout_s:
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def new(self) -> tuple[str, Session]:
        key = secrets.token_urlsafe(32)
        session = Session()
        with self._lock:
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
                del self._sessions[oldest]
            self._sessions[key] = session
        return key, session

    def drop(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key or "", None)


class LoginLimiter:
    """At most ``max_failures`` failed logins per client in ``window_s``; then wait."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds this client must wait before trying again (0 = may try now)."""
        now = time.monotonic()
        with self._lock:
            recent = self._failures.get(client)
            if not recent:
                return 0.0
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (now - recent[0]))

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 1024:  # forget the oldest clients rather than grow without bound
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(client, deque(maxlen=self.max_failures)).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time CSRF token comparison (``None`` never matches)."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())
