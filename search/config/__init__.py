"""The study config: YAML file + ``--set`` overrides -> one typed, validated, frozen object.

This package is the only place that reads YAML for settings. Every problem is a
:class:`~search.errors.ConfigError` whose message is one line naming the file, the key path and
the bad value. Modules: ``_schema`` (the sections), ``_yaml_text`` (parsing with the number rule),
``_overrides`` (``--set``), ``_checks`` (rules across keys and the objective's parameters),
``_load`` (file -> config), ``_drift`` (what changed between two configs).
"""

from search.config._checks import param_values
from search.config._drift import SAME_TASK_KEYS, config_differences, describe, get_path
from search.config._load import config_from_dict, load_config
from search.config._overrides import apply_override
from search.config._schema import (
    DEFAULT_STORAGE,
    ArtifactsSection,
    CategoricalSpace,
    FloatSpace,
    IntSpace,
    PrunerSection,
    SamplerSection,
    StudyConfig,
    StudySection,
)
from search.config._yaml_text import dump_yaml, parse_yaml

__all__ = [
    "DEFAULT_STORAGE",
    "SAME_TASK_KEYS",
    "ArtifactsSection",
    "CategoricalSpace",
    "FloatSpace",
    "IntSpace",
    "PrunerSection",
    "SamplerSection",
    "StudyConfig",
    "StudySection",
    "apply_override",
    "config_differences",
    "config_from_dict",
    "describe",
    "dump_yaml",
    "get_path",
    "load_config",
    "param_values",
    "parse_yaml",
]
