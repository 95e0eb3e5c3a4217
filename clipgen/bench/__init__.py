"""clipgen bench: fixed cases with random-weight real architectures, timed per stage."""
