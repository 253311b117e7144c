"""``elvmass`` subcommands of the quantization side. Each module: ``add_arguments`` and ``run``."""
