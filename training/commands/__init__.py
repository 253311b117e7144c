"""``elvmass`` subcommands of the training side. Each module: ``add_arguments`` and ``run``."""
