"""Stem separation: which models exist, and the two engines that run them.

* ``catalog``: the four models of the REST contract and their stems (pure data).
* ``weights``: where demucs weights come from (offline folder or demucs' own download), presence checks.
* ``local``: the demucs engine a worker keeps warm; ``windowed`` runs demucs over a stream in bounded
  memory and ``audio_stream`` decodes the input block by block.
* ``lalalai``: the lalal.ai API v1 client and the cloud separation.
* ``stems``: the stem files both engines write and return.

Importing this package loads no torch: the web process lists models without the deep-learning stack;
``local`` and ``windowed`` import it when a worker or the CLI needs them.
"""

from core.separation.catalog import (
    DEFAULT_ENGINE,
    DEFAULT_MODEL,
    ENGINES,
    MODEL_NAMES,
    MODELS,
    ModelInfo,
    model_info,
)
from core.separation.stems import StemFile

__all__ = ["DEFAULT_ENGINE", "DEFAULT_MODEL", "ENGINES", "MODELS", "MODEL_NAMES", "ModelInfo", "StemFile",
           "model_info"]
