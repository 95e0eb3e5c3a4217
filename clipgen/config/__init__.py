"""Settings: the typed schema, presets, and the one merge defaults < preset < flags < --set."""
