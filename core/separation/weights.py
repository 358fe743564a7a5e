"""Where demucs weights come from, and whether they are on this machine.

Two sources, as demucs itself knows them:

* an offline folder (``STEMFORGE_DEMUCS_REPO``) in demucs' ``--repo`` layout: one ``<sig>.th``
  (or ``<sig>-<checksum>.th``) checkpoint per model and one ``<name>.yaml`` per bag of models;
* demucs' own download on first use (the HuggingFace hub, then its legacy AWS repository), which
  keeps the files in the HuggingFace and torch.hub caches.

Checking presence reads only file names and YAML, never torch, so the web process can answer
``GET /api/processing/models`` cheaply. A model that is missing and cannot be downloaded is a
``BadInput`` whose message says how to get it: retrying a job cannot conjure weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
from pathlib import Path
from typing import Any

import yaml

from core.progress import BadInput
from core.separation.catalog import MODELS, model_info

# demucs' HuggingFace namespace (demucs.hf.DEFAULT_NAMESPACE).
_HF_NAMESPACE = "adefossez"


def _demucs_remote_dir() -> Path:
    """demucs' packaged list of its published checkpoints (``demucs/remote``), found without importing torch."""
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("demucs is not installed: pip install demucs")
    return Path(next(iter(spec.submodule_search_locations))) / "remote"


def _hf_repo_id(name: str) -> str:
    # Same mapping as demucs.hf.hf_repo_name (htdemucs -> HTDemucs, htdemucs_ft -> HTDemucs-ft, ...).
    if name == "htdemucs":
        repo = "HTDemucs"
    elif name.startswith("htdemucs_"):
        repo = "HTDemucs-" + name[len("htdemucs_"):]
    else:
        repo = "Demucs-" + name
    return f"{_HF_NAMESPACE}/{repo}"


def _torch_hub_checkpoints() -> Path:
    # torch.hub.get_dir() without importing torch: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch.
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def _bag_signatures(yaml_path: Path) -> list[str]:
    with open(yaml_path) as fh:
        return [str(sig) for sig in (yaml.safe_load(fh) or {}).get("models", [])]


def _repo_checkpoints(repo: Path) -> set[str]:
    """Signatures of the checkpoints in a folder, named the way demucs.repo.LocalRepo reads them."""
    sigs = set()
    for file in repo.iterdir():
        if file.suffix == ".th":
            sigs.add(file.stem.rsplit("-", 1)[0] if "-" in file.stem else file.stem)
    return sigs


def _in_repo(name: str, repo: Path) -> bool:
    if not repo.is_dir():
        return False
    checkpoints = _repo_checkpoints(repo)
    if name in checkpoints:
        return True
    bag = repo / f"{name}.yaml"
    if not bag.is_file():
        return False
    sigs = _bag_signatures(bag)
    return bool(sigs) and all(sig in checkpoints for sig in sigs)


def _in_hf_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    repo_id = _hf_repo_id(name)
    bag = try_to_load_from_cache(repo_id, f"{name}.yaml")
    if not isinstance(bag, str):
        return False
    sigs = _bag_signatures(Path(bag))
    return bool(sigs) and all(isinstance(try_to_load_from_cache(repo_id, f"{sig}.safetensors"), str) for sig in sigs)


def _in_torch_hub_cache(name: str) -> bool:
    remote = _demucs_remote_dir()
    bag = remote / f"{name}.yaml"
    if not bag.is_file():
        return False
    files = {}
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("root:"):
            files[line.split("-", 1)[0]] = line
    checkpoints = _torch_hub_checkpoints()
    sigs = _bag_signatures(bag)
    return bool(sigs) and all(sig in files and (checkpoints / files[sig]).is_file() for sig in sigs)


def weights_present(name: str, repo: Path | None) -> bool:
    """True when ``name`` can be loaded without the network: from ``repo``, or from demucs' caches."""
    model_info(name)
    if repo is not None:
        return _in_repo(name, repo)
    return _in_hf_cache(name) or _in_torch_hub_cache(name)


def presence(repo: Path | None) -> dict[str, bool]:
    """Every catalogue model and whether its weights are on this machine."""
    return {info.name: weights_present(info.name, repo) for info in MODELS}


def missing_message(name: str, repo: Path | None) -> str:
    if repo is not None:
        return (f"The weights of model {name!r} are not in the offline model folder {repo} "
                f"(STEMFORGE_DEMUCS_REPO). Run `python main.py models fetch {name}` on this machine with internet "
                f"access to download them into that folder, or copy its checkpoints (<sig>.th) and {name}.yaml there.")
    return (f"The weights of model {name!r} are not on this machine and could not be downloaded. Run "
            f"`python main.py models fetch {name}` with internet access, or set STEMFORGE_DEMUCS_REPO to a folder "
            f"holding its checkpoints.")


def load(name: str, repo: Path | None) -> Any:
    """The demucs model (usually a BagOfModels) for ``name``, through demucs' own loader."""
    model_info(name)
    from demucs.pretrained import get_model

    if repo is not None:
        if not repo.is_dir():
            raise BadInput(f"STEMFORGE_DEMUCS_REPO is set to {repo}, which is not a folder. Point it at a folder of "
                           f"demucs checkpoints, or unset it to let demucs download models on first use.")
        if not _in_repo(name, repo):
            raise BadInput(missing_message(name, repo))
        try:
            return get_model(name, repo=repo)
        except Exception as exc:  # a corrupt or mismatched checkpoint: no retry will fix the file
            raise BadInput(f"The checkpoint of model {name!r} in {repo} could not be loaded: {exc}") from exc
    try:
        return get_model(name)
    except Exception as exc:  # no network, or the download failed
        raise BadInput(f"{missing_message(name, None)} ({type(exc).__name__}: {exc})") from exc


def export(model: Any, name: str, folder: Path) -> list[Path]:
    """Write a loaded model into ``folder`` in demucs' ``--repo`` layout, so it loads offline from there.

    Each sub-model becomes ``<sig>.th``, the package that ``demucs.states.load_model`` reads (class,
    init arguments, half-precision state, like demucs' own published files), with ``sig`` the start of
    its SHA-256; ``<name>.yaml`` lists them with the bag's weights and segment.
    """
    import torch
    from demucs.apply import BagOfModels
    from demucs.states import get_state

    folder.mkdir(parents=True, exist_ok=True)
    models = list(model.models) if isinstance(model, BagOfModels) else [model]
    written: list[Path] = []
    sigs: list[str] = []
    segment = None
    for sub in models:
        args, kwargs = sub._init_args_kwargs
        package = {"klass": sub.__class__, "args": args, "kwargs": kwargs, "state": get_state(sub, None, half=True)}
        buf = io.BytesIO()
        torch.save(package, buf)
        sig = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
        path = folder / f"{sig}.th"
        path.write_bytes(buf.getvalue())
        written.append(path)
        sigs.append(sig)
        if "segment" in kwargs and sub.segment != kwargs["segment"]:
            segment = float(sub.segment)  # the bag overrode the model's own segment
    bag: dict[str, Any] = {"models": sigs}
    if isinstance(model, BagOfModels) and any(w != 1.0 for weights in model.weights for w in weights):
        bag["weights"] = [[float(w) for w in weights] for weights in model.weights]
    if segment is not None:
        bag["segment"] = segment
    bag_path = folder / f"{name}.yaml"
    bag_path.write_text(yaml.safe_dump(bag))
    written.append(bag_path)
    return written


def fetch(name: str, repo: Path | None) -> str:
    """Download ``name`` ahead of use with demucs' loader; with an offline folder, also write it there.

    Returns a line saying where the weights now are.
    """
    model_info(name)
    if weights_present(name, repo):
        return f"{name}: already present" + (f" in {repo}" if repo else " in the demucs cache")
    from demucs.pretrained import get_model

    try:
        model = get_model(name)
    except Exception as exc:
        raise BadInput(f"Could not download model {name!r} ({type(exc).__name__}: {exc}). This needs internet "
                       f"access; on a machine without it, copy a folder of checkpoints and set "
                       f"STEMFORGE_DEMUCS_REPO to it.") from exc
    if repo is None:
        return f"{name}: downloaded into the demucs cache"
    export(model, name, repo)
    return f"{name}: downloaded into {repo}"
