"""``elvmass`` subcommands of the firmware bridge. Each module: ``add_arguments`` and ``run``."""
