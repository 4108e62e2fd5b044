"""The one preparation step before trials run, shared by the CLI and the Python API.

Everything that can be checked before a storage is touched is checked here, so a bad storage
URL, sampler argument, model name or data file is one clear error up front, not a failure on
every trial: the storage URL, the sampler and pruner arguments, the objective's own pre-study
checks (models, data files), and the device.
"""

from __future__ import annotations

from objectives.errors import DataError, ModelError, ParamError
from search.algorithms import build_pruner, build_sampler
from search.config import StudyConfig, param_values
from search.errors import ConfigError
from storage.urls import parse_storage_url


def check_buildable(config: StudyConfig, source: str) -> None:
    """Storage URL, sampler and pruner args, study name, and the objective's pre-study checks."""
    parse_storage_url(config.study.storage)
    build_sampler(config, source)
    build_pruner(config.pruner, source)
    if config.study.name != config.study.name.strip() or "\n" in config.study.name:
        raise ConfigError(
            f"{source}: study.name: no leading/trailing spaces or newlines, "
            f"got {config.study.name!r}"
        )
    try:
        config.spec.check(param_values(config), config.data_config())
    except ParamError as e:
        where = f"search.{e.param}.choices" if e.param in config.search else f"fixed.{e.param}"
        raise ConfigError(f"{source}: {where}: {e}") from e
    except (DataError, ModelError) as e:
        raise ConfigError(f"{source}: {e}") from e


def resolve_device(requested: str) -> str:
    """``auto``: ``cuda`` when a GPU is visible, else ``cpu``. ``cuda`` without a GPU: error."""
    import torch

    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {requested!r}: use auto, cpu or cuda")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA device is available here; use --device cpu or auto"
        )
    return requested


def use_device(device: str) -> None:
    """Per-device settings for the whole process: TF32 matrix products on NVIDIA GPUs."""
    if device.startswith("cuda"):
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def setup_device(requested: str) -> str:
    """Resolve ``requested`` and apply its per-process settings; return the device to train on."""
    device = resolve_device(requested)
    use_device(device)
    return device


def prepare(config: StudyConfig, source: str, device: str) -> str:
    """Check ``config`` and resolve ``device``; return the device trials will use."""
    check_buildable(config, source)
    return setup_device(device)
