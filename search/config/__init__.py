"""The study config: YAML file + ``--set`` overrides -> one typed, validated, frozen object.

This package is the only place that reads YAML for settings. Every problem is a
:class:`~search.errors.ConfigError` whose message is one line naming the file, the key path and
the bad value. Modules: ``schema`` (the sections), ``yaml_text`` (parsing with the number rule),
``overrides`` (``--set``), ``checks`` (rules across keys and the objective's parameters),
``load`` (file -> config).
"""

from search.config.checks import param_values
from search.config.load import config_from_dict, load_config
from search.config.overrides import apply_override
from search.config.schema import (
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
from search.config.yaml_text import dump_yaml, parse_yaml

__all__ = [
    "DEFAULT_STORAGE",
    "ArtifactsSection",
    "CategoricalSpace",
    "FloatSpace",
    "IntSpace",
    "PrunerSection",
    "SamplerSection",
    "StudyConfig",
    "StudySection",
    "apply_override",
    "config_from_dict",
    "dump_yaml",
    "load_config",
    "param_values",
    "parse_yaml",
]
