"""Firmware bridge: bytes <-> samples (frame protocol, serial transport, device emulator, C encoder).

Imports nothing else of the project (numpy and pyserial only); it delivers the 8 measured leads
I, II, V1..V6 and the edge runtime derives III, aVR, aVL, aVF with ``edge_runtime.record.derive_limb_leads``.
"""
