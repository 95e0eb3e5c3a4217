"""Priors: models that write a grid of VQGAN tokens for a text (the DALL-E half of clipgen)."""

from clipgen.priors.registry import PRIORS, decoder_of, load_prior, prior_names

__all__ = ["PRIORS", "decoder_of", "load_prior", "prior_names"]
