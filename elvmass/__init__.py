"""elvmass: left-ventricular mass from the 12-lead ECG, from training to the device.

This package holds only the command-line dispatcher; the work lives in the sibling packages
``firmware_bridge``, ``edge_runtime``, ``training`` and ``quantization``.
"""

__version__ = "0.1.0"
