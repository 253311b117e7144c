"""Edge runtime: samples -> beats -> features -> estimate -> report.

This package is the only home of ECG preprocessing; ``training`` imports it. It must never import
torch, TensorFlow or matplotlib at module level (``tests/test_edge_imports.py`` enforces it).
"""
