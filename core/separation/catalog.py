"""The separation models StemForge offers, as the REST contract lists them.

Pure data, no torch: the web process lists models without loading a deep-learning stack.
The stem names are the ``sources`` of the real demucs checkpoints, in their order, so a
stem file is named after the source that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.progress import BadInput

FOUR_STEMS = ("drums", "bass", "other", "vocals")
SIX_STEMS = ("drums", "bass", "other", "vocals", "guitar", "piano")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    stem_names: tuple[str, ...]

    @property
    def stems(self) -> int:
        return len(self.stem_names)


# Order, names and descriptions exactly as `GET /api/processing/models` in the REST contract.
MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("htdemucs", "Hybrid Transformer Demucs - default 4-stem model", FOUR_STEMS),
    ModelInfo("htdemucs_ft", "Fine-tuned Hybrid Transformer Demucs - higher quality, slower", FOUR_STEMS),
    ModelInfo("htdemucs_6s", "6-stem model (vocals, drums, bass, guitar, piano, other)", SIX_STEMS),
    ModelInfo("mdx_extra", "MDX-Net Extra - alternative architecture, good for vocals", FOUR_STEMS),
)
MODEL_NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
DEFAULT_MODEL = "htdemucs"
# `engine` of POST /api/processing/separate: demucs on this machine, or the lalal.ai cloud API.
ENGINES: tuple[str, ...] = ("local", "lalalai")
DEFAULT_ENGINE = "local"


def model_info(name: str) -> ModelInfo:
    """The catalogue entry for ``name``; BadInput (naming the allowed values) for anything else."""
    for info in MODELS:
        if info.name == name:
            return info
    raise BadInput(f"Unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
