"""Firmware bridge: bytes <-> samples (frame protocol, serial transport, device emulator, C encoder).

Depends on nothing else in the project except ``edge_runtime.record`` for lead names and derivation.
"""
