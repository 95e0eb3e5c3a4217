"""What CLIP makes of an image: prompts, the CLIP ensemble, cutouts, losses and the objective."""
