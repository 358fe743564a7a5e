"""A local demucs model folder with small, randomly initialised models of the real classes.

Every model is a real ``demucs.htdemucs.HTDemucs`` or ``demucs.hdemucs.HDemucs``, only with tiny
channel counts and depth, saved in demucs' own checkpoint format: ``<sig>-<checksum>.th`` holding
``{'klass', 'args', 'kwargs', 'state'}`` (half-precision state, as demucs' published files), plus
one ``<name>.yaml`` bag per catalogue name, shaped like demucs' own ``remote/*.yaml``:

* ``htdemucs``: a bag of one HTDemucs with 4 sources;
* ``htdemucs_ft``: a bag of four HTDemucs, each weighted for one source only;
* ``htdemucs_6s``: a bag of one HTDemucs with 6 sources (guitar and piano added);
* ``mdx_extra``: a bag of four HDemucs with the bag's segment overriding the models'.

``demucs.pretrained.get_model(name, repo=folder)`` loads them through demucs' real loader
(LocalRepo checksums, BagOnlyRepo, states.load_model). Segments are short (1-2 s) so a few seconds
of audio already needs several chunks; a separation of a few seconds takes well under a second.
"""

from __future__ import annotations

import hashlib
import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import yaml
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from demucs.states import get_state

FOUR = ["drums", "bass", "other", "vocals"]
SIX = ["drums", "bass", "other", "vocals", "guitar", "piano"]

TINY_HTDEMUCS: dict[str, Any] = dict(channels=4, depth=3, nfft=2048, t_layers=1, t_heads=1, t_hidden_scale=1.0,
                                     bottom_channels=0, dconv_mode=1, dconv_comp=4, segment=Fraction(3, 2))
TINY_HDEMUCS: dict[str, Any] = dict(channels=4, depth=4, nfft=1024, dconv_comp=2, dconv_attn=10, dconv_lstm=10,
                                    segment=4)
# mdx_extra's bag overrides the models' segment (demucs' remote/mdx_extra.yaml says 44).
MDX_BAG_SEGMENT = 2

# The official htdemucs hyper-parameters (the kwargs stored in its checkpoint 955717e8): for benchmarks,
# where a randomly initialised model costs what the published one costs.
HTDEMUCS_FULL: dict[str, Any] = dict(
    audio_channels=2, bottom_channels=512, cac=True, channels=48, channels_time=None, context=1, context_enc=0,
    dconv_comp=8, dconv_depth=2, dconv_init=0.001, dconv_mode=3, depth=4, emb_scale=10, emb_smooth=True,
    end_iters=0, freq_emb=0.2, growth=2, kernel_size=8, multi_freqs=[], multi_freqs_depth=3, nfft=4096,
    norm_groups=4, norm_starts=4, rescale=0.1, rewrite=True, samplerate=44100, segment=Fraction(39, 5), stride=4,
    t_auto_sparsity=False, t_cape_augment=True, t_cape_glob_loc_scale=[5000.0, 1.0, 1.4],
    t_cape_mean_normalize=True, t_cross_first=False, t_dropout=0.02, t_emb="sin", t_gelu=True, t_global_window=100,
    t_group_norm=False, t_heads=8, t_hidden_scale=4.0, t_layer_scale=True, t_layers=5, t_lr=None,
    t_mask_random_seed=42, t_mask_type="diag", t_max_period=10000.0, t_max_positions=10000, t_norm_first=True,
    t_norm_in=True, t_norm_in_group=False, t_norm_out=True, t_sin_random_shift=0, t_sparse_attn_window=400,
    t_sparse_cross_attn=False, t_sparse_self_attn=False, t_sparsity=0.95, t_weight_decay=0.0,
    t_weight_pos_embed=1.0, time_stride=2, wiener_iters=0, wiener_residual=False,
)


def save_checkpoint(model: torch.nn.Module, folder: Path, sig: str) -> Path:
    """Save ``model`` as demucs publishes models: ``<sig>-<sha256[:8]>.th`` with the package load_model reads."""
    args, kwargs = model._init_args_kwargs
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=True)}
    buf = io.BytesIO()
    torch.save(package, buf)
    checksum = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    path = folder / f"{sig}-{checksum}.th"
    path.write_bytes(buf.getvalue())
    return path


def write_bag(folder: Path, name: str, sigs: list[str], weights: list[list[float]] | None = None,
              segment: float | None = None) -> Path:
    bag: dict[str, Any] = {"models": sigs}
    if weights is not None:
        bag["weights"] = weights
    if segment is not None:
        bag["segment"] = segment
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bag))
    return path


def _sig(name: str, i: int) -> str:
    return hashlib.sha1(f"{name}/{i}".encode()).hexdigest()[:8]


def build_model_repo(folder: Path, names: tuple[str, ...] = ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"),
                     seed: int = 0, htdemucs_segment: Fraction | None = None) -> Path:
    """Write tiny models for ``names`` into ``folder`` (created); returns the folder.

    ``htdemucs_segment`` gives the ``htdemucs`` model another segment (the published one is 39/5 s).
    """
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for name in names:
        if name == "htdemucs":
            sig = _sig(name, 0)
            kwargs = {**TINY_HTDEMUCS, "segment": htdemucs_segment or TINY_HTDEMUCS["segment"]}
            save_checkpoint(HTDemucs(FOUR, **kwargs), folder, sig)
            write_bag(folder, name, [sig])
        elif name == "htdemucs_ft":
            sigs = [_sig(name, i) for i in range(4)]
            for sig in sigs:
                save_checkpoint(HTDemucs(FOUR, **TINY_HTDEMUCS), folder, sig)
            write_bag(folder, name, sigs, weights=[[1.0 if j == i else 0.0 for j in range(4)] for i in range(4)])
        elif name == "htdemucs_6s":
            sig = _sig(name, 0)
            save_checkpoint(HTDemucs(SIX, **TINY_HTDEMUCS), folder, sig)
            write_bag(folder, name, [sig])
        elif name == "mdx_extra":
            sigs = [_sig(name, i) for i in range(4)]
            for sig in sigs:
                save_checkpoint(HDemucs(FOUR, **TINY_HDEMUCS), folder, sig)
            write_bag(folder, name, sigs, segment=MDX_BAG_SEGMENT)
        else:
            raise ValueError(f"no fake for {name}")
    return folder


def build_full_htdemucs(folder: Path, seed: int = 0, **overrides: Any) -> Path:
    """The real htdemucs architecture (42 M parameters), randomly initialised, as ``htdemucs`` in ``folder``.

    ``overrides`` change hyper-parameters (e.g. fewer channels for a cheap model with the real segment).
    """
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    sig = "955717e8"  # the published model's signature, so the folder looks like demucs' own
    save_checkpoint(HTDemucs(FOUR, **{**HTDEMUCS_FULL, **overrides}), folder, sig)
    write_bag(folder, "htdemucs", [sig])
    return folder
