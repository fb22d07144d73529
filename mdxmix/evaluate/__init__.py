"""Evaluation: SDR metrics, baseline ensembles, parallel scoring, reports and plots.

The public entry points the rest of mdxmix (and users) call:

* :func:`score_systems` — score ``{name: track -> stems}`` systems against references;
* :func:`build_baseline_systems` / :func:`select_per_source_best` — the baselines from
  cached upstream stems, with the per-source best chosen on a validation split, and
  :func:`add_oracle_selection` — the paper's per-source best, chosen on the test split;
* :func:`global_sdr`, :func:`framewise_sdr`, :func:`score_track` — the metrics;
* :func:`eval_command` — the ``mdxmix eval`` Typer command (imported lazily by the CLI).
"""

from __future__ import annotations

from ..mixer.ensembles import RULES, ensemble, per_source_best
from ..musdb import MusdbSplit
from .dataset import EstimatesFolder, EvaluationError
from .metrics import framewise_sdr, global_sdr, score_track
from .report import Results, write_outputs
from .runner import (
    EnsembleSystem,
    Memo,
    SelectionSystem,
    add_oracle_selection,
    build_baseline_systems,
    score_systems,
    select_per_source_best,
)

__all__ = [
    "RULES",
    "EnsembleSystem",
    "EstimatesFolder",
    "EvaluationError",
    "Memo",
    "MusdbSplit",
    "Results",
    "SelectionSystem",
    "add_oracle_selection",
    "build_baseline_systems",
    "ensemble",
    "framewise_sdr",
    "global_sdr",
    "per_source_best",
    "score_systems",
    "score_track",
    "select_per_source_best",
    "write_outputs",
]
