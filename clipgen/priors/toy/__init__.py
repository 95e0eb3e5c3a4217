"""The toy prior: a small decoder-only transformer over the toy world's 8×8 VQGAN tokens."""
