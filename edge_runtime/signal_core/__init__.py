"""Signal core: conditioning, R-peak detection, beat extraction, delineation, quality and rhythm guards.

numpy/scipy only. One implementation shared by the device runtime and training (through
:mod:`edge_runtime.preprocess`).
"""
