"""``hpsearch retrain``: train one fixed configuration with K seeds, touch the test set once each.

The search picked its winner on validation with one training seed. This module answers the
honest final question: how good is that configuration over seeds, and does it really beat a
baseline? Each seed varies initialisation, data order and dropout; the train/validation/test
split stays the one fixed by ``study.seed``. Every run keeps its best epoch by validation and
evaluates the test split once, on that epoch's weights (the training loop does this).

Runs are ordinary studies in the storage, named ``<source study>/retrain`` and
``<source study>/retrain-baseline``: each seed is one trial enqueued with the user attr
``training_seed``. Rerunning the same command resumes: seeds with a finished trial are not
trained again. The seeds are ``study.seed + 1 ... study.seed + K``, never the seed the search
itself trained with, so the winner's lucky draw in the search does not count a second time.

Modules: ``_plan`` (configs, seeds, study names), ``_runs`` (one enqueued trial per seed,
resumable), ``_result`` (spread and paired comparison), ``_stats`` (mean, confidence interval,
paired t-test), ``_output`` (tables, result file) and ``_audit`` (``hpsearch audit``: a study's
pruned and early-stopped trials trained again to full length, the same machinery).
"""

from search.retrain._audit import DEFAULT_AUDIT_TRIALS, run_audit, sample
from search.retrain._output import add_to_config_file, default_output, format_result, write_result
from search.retrain._plan import (
    BASELINE_SUFFIX,
    DEFAULT_SEEDS,
    WINNER_SUFFIX,
    RetrainPlan,
    plan_retrain,
)
from search.retrain._result import RetrainResult, compared_metrics, conclusion, retrain
from search.retrain._runs import SeedRun, run_seeds
from search.retrain._stats import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    compare_paired,
    summarize,
    t_quantile,
    verdict,
)

__all__ = [
    "BASELINE_SUFFIX",
    "BETTER",
    "DEFAULT_AUDIT_TRIALS",
    "DEFAULT_SEEDS",
    "NO_DIFFERENCE",
    "WINNER_SUFFIX",
    "WORSE",
    "RetrainPlan",
    "RetrainResult",
    "SeedRun",
    "add_to_config_file",
    "compare_paired",
    "compared_metrics",
    "conclusion",
    "default_output",
    "format_result",
    "plan_retrain",
    "retrain",
    "run_audit",
    "run_seeds",
    "sample",
    "summarize",
    "t_quantile",
    "verdict",
    "write_result",
]
