"""The one preparation step before trials run, shared by the CLI and the Python API.

Everything that can be checked before a storage is touched is checked here, so a bad storage
URL, sampler argument, model name or data file is one clear error up front, not a failure on
every trial: the storage URL, the sampler and pruner arguments, the objective's own pre-study
checks (models, data files), and the device.
"""

from __future__ import annotations

from objectives.errors import DataError, ModelError, ParamError
from search.config import StudyConfig, param_values
from search.errors import ConfigError
from search.pruning import build_pruner, build_sampler
from search.study._devices import Slot, gpu_count, parse_devices, plan_slots, spread, use_device
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
    """``auto``: ``cuda`` when a GPU is visible, else ``cpu``. ``cuda`` without a GPU: error.

    ``cuda:N`` names one GPU (checked to exist).
    """
    gpus = gpu_count()
    if requested == "auto":
        return "cuda" if gpus else "cpu"
    if requested == "cuda" and not gpus:
        raise ConfigError(
            "--device cuda: no CUDA device is available here; use --device cpu or auto"
        )
    if requested == "cuda":
        return requested
    if "," in requested:
        raise ConfigError(f"--device {requested!r}: one device; use --devices for several")
    return parse_devices(requested, gpus, "--device")[0]


def plan_placement(
    *,
    device: str | None = None,
    devices: str | None = None,
    workers: int | None = None,
    trials_per_device: int | None = None,
) -> list[Slot]:
    """One slot per worker (``--device``/``--workers`` or ``--devices``/``--trials-per-device``).

    ``--device X`` is the one-device form of ``--devices X``: giving both is refused, as is
    ``--workers`` with ``--devices`` (the slots are the devices times ``--trials-per-device``).
    """
    if devices is not None and device is not None:
        raise ConfigError(
            f"--device {device} and --devices {devices}: give one of them "
            "(--device X is the same as --devices X)"
        )
    if devices is not None and workers is not None:
        raise ConfigError(
            f"--workers {workers} and --devices {devices}: the workers are the devices times "
            "--trials-per-device; drop --workers"
        )
    if devices is None and trials_per_device is None:
        return spread(resolve_device(device or "auto"), workers or 1)
    if trials_per_device is not None and workers is not None:
        raise ConfigError(
            f"--workers {workers} and --trials-per-device {trials_per_device}: give one of "
            "them (--trials-per-device N runs N workers on each device)"
        )
    named = devices if devices is not None else (device or "auto")
    option = "--devices" if devices is not None else "--device"
    return plan_slots(parse_devices(named, gpu_count(), option), trials_per_device or 1)


def setup_device(requested: str) -> str:
    """Resolve ``requested`` and apply its per-process settings; return the device to train on."""
    device = resolve_device(requested)
    use_device(device)
    return device
