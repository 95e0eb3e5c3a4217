"""DALL-E dVAE: relaxed one-hot codes decoded by OpenAI's decoder; safe loading."""
