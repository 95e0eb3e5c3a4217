"""Registry entries of downloadable checkpoints, one module per model family."""
