"""Reading a study back: tables, the report, caveats, export, live progress, the dashboard.

Modules: ``_results`` (epoch, trial and front tables), ``_report`` and ``_figures`` (``hpsearch
report``), ``_caveats`` (when the winner is not a winner), ``_export`` (best parameters and
models), ``_progress`` (what ``run`` prints as trials finish), ``_dashboard``
(optuna-dashboard) and ``_audit`` (what an audit's runs say about pruning).
"""

from __future__ import annotations

from search.readout._audit import (
    AUDIT_SUFFIX,
    AuditResult,
    audit_result,
    by_audited_trial,
    format_audit,
    stopped_trials,
)
from search.readout._caveats import caveats, wilson_interval
from search.readout._dashboard import serve
from search.readout._export import (
    export_model,
    export_text,
    exported_config,
    exported_front,
    write_export,
    write_front,
)
from search.readout._progress import TrialPrinter, finished_rank, print_start, print_summary
from search.readout._report import render_report
from search.readout._results import format_epoch_table, format_front_table, format_trials_table

__all__ = [
    "AUDIT_SUFFIX",
    "AuditResult",
    "TrialPrinter",
    "audit_result",
    "by_audited_trial",
    "caveats",
    "export_model",
    "export_text",
    "exported_config",
    "exported_front",
    "finished_rank",
    "format_audit",
    "format_epoch_table",
    "format_front_table",
    "format_trials_table",
    "print_start",
    "print_summary",
    "render_report",
    "serve",
    "stopped_trials",
    "wilson_interval",
    "write_export",
    "write_front",
]
