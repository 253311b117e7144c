"""Training: synthetic cohort, eLVMass-Net model, cross-validation, baselines, saliency, ONNX export.

Imports ``edge_runtime`` for all preprocessing; never re-implements it.
"""
