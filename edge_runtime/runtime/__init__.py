"""The device runtime: raw 8-channel stream -> 10 s windows -> estimate -> store and report.

One idea per module: ``patient`` (operator input), ``window`` (gap-aware 10 s windows),
``estimate`` (per-beat model, aggregation, LVH, status), ``store`` (SQLite), ``report``
(JSON and the printable PNG/PDF), ``display`` (live terminal line), ``sources`` (serial port,
emulator pty, real-time file replay).
"""
