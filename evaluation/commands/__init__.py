"""``elvmass`` subcommands that evaluate rather than run: ``bench``, ``bench-signal``, ``fuzz-decoder``."""
