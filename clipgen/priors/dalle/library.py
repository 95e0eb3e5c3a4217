"""The one place clipgen imports ``min_dalle``.

Importing any part of min-dalle runs ``min_dalle/__init__.py``, which imports
``min_dalle/min_dalle.py``, which at import time (0.4.11) turns autograd off for the whole
process (``torch.set_grad_enabled(False)``), sets the thread count to ``os.cpu_count()``
and switches cuDNN on with TF32. Any of those would silently change a clipgen run (no
gradients for the generator, oversubscribed cores, different numerics), so the import is
wrapped: the four settings are read before and put back after, whatever happens.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from clipgen.errors import MissingDependencyError

#: Python module name -> the distribution to install, for the packages min-dalle imports.
_DISTRIBUTIONS = {"min_dalle": "min-dalle", "PIL": "pillow"}


def min_dalle() -> SimpleNamespace:
    """``DalleBartEncoder``, ``DalleBartDecoder``, ``VQGanDetokenizer`` and ``TextTokenizer``,
    imported with the process' grad mode, thread count and cuDNN flags left as they were."""
    # Python caches the modules, so only the first call runs min-dalle's import-time code;
    # restoring the settings after a cached import is harmless.
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    cudnn = torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32
    try:
        from min_dalle.models import DalleBartDecoder, DalleBartEncoder, VQGanDetokenizer
        from min_dalle.text_tokenizer import TextTokenizer
    except ModuleNotFoundError as exc:
        package = _DISTRIBUTIONS.get(exc.name or "", exc.name or "min-dalle")
        raise MissingDependencyError(package, "dalle", "The DALL-E Mini/Mega priors") from None
    finally:
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)
        torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32 = cudnn
    return SimpleNamespace(DalleBartEncoder=DalleBartEncoder, DalleBartDecoder=DalleBartDecoder,
                           VQGanDetokenizer=VQGanDetokenizer, TextTokenizer=TextTokenizer)
