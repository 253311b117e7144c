"""What never ships to the device: benchmarks, signal scoring, interval checks, fuzz drivers.

Sits at the top of the import graph (it may import edge_runtime, firmware_bridge, training); nothing on the
device side imports it.
"""
