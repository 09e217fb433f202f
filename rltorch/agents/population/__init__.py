"""Populations: many agents trained at once in one process, sweeps over their hyperparameters, and the
statistics and run files that report them."""
