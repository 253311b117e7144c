"""Quantization: float ONNX model -> INT8 ONNX / TFLite -> verified, self-describing model bundle."""
