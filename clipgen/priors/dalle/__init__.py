"""DALL-E Mini and DALL-E Mega as priors, through the ``min-dalle`` package's modules.

Only min-dalle's model classes and tokenizer are used (never its ``MinDalle`` class, which
downloads with ``requests`` when constructed): :mod:`.library` imports them behind a guard,
:mod:`.loader` builds them and loads the registry's files, :mod:`.prior` computes logits.
"""
