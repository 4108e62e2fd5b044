"""hpsearch: Optuna hyperparameter search for Transformer training."""

__version__ = "0.1.0"
