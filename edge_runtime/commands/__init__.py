"""``elvmass`` subcommands that run on the device. Each module: ``add_arguments`` and ``run``."""
