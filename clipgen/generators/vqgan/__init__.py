"""VQGAN: latents on a taming-transformers codebook, decoded without Lightning."""
