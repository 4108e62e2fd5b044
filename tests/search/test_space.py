"""Search space -> Optuna suggestions, distributions and grids."""

from __future__ import annotations

from pathlib import Path

import optuna

from search.config import config_from_dict
from search.trial import distributions, grid, sample_params


def config():
    return config_from_dict(
        {
            "study": {"name": "s"},
            "objective": "toy_transformer",
            "fixed": {"epochs": 4},
            "search": {
                "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
                "max_grad_norm": {"type": "float", "low": 0.5, "high": 5.0, "step": 0.5},
                "num_layers": {"type": "int", "low": 1, "high": 3},
                "batch_size": {"type": "categorical", "choices": [16, 32]},
                "hidden_dim": {"type": "categorical", "choices": [16, 32]},
                "num_heads": {"type": "categorical", "choices": [1, 2, 4]},
            },
        }
    )


def test_sampled_values_lie_in_their_spaces(tmp_path: Path) -> None:
    cfg = config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = []
    for _ in range(30):
        trial = study.ask()
        params = sample_params(trial, cfg)
        seen.append(params)
        assert params["epochs"] == 4 and params["dropout"] == 0.0, "fixed values and defaults"
        assert 1e-5 <= params["lr"] <= 1e-2
        assert params["max_grad_norm"] in [0.5 * k for k in range(1, 11)]
        assert params["num_layers"] in (1, 2, 3) and isinstance(params["num_layers"], int)
        assert params["batch_size"] in (16, 32)
        study.tell(trial, 0.0)
    assert len({p["lr"] for p in seen}) == 30
    assert {p["num_layers"] for p in seen} == {1, 2, 3}
    # Log scale: about half the samples fall below the geometric midpoint (~3.2e-4).
    below = sum(p["lr"] < 3.2e-4 for p in seen)
    assert 8 <= below <= 22


def test_distributions_and_grid() -> None:
    cfg = config()
    dists = distributions(cfg)
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)
    assert dists["num_layers"] == optuna.distributions.IntDistribution(1, 3)
    assert grid(cfg) == {"batch_size": [16, 32], "hidden_dim": [16, 32], "num_heads": [1, 2, 4]}
