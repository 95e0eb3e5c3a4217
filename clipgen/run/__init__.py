"""A run, top-down: inputs, session, the optimisation loop, checkpoints, candidates and batches."""
