"""The Dagster code location: every asset, check, job, schedule and resource.

Loaded by `dagster dev -w workspace.yaml`; import stays cheap (no GX, torch or MLflow
imports at module level) so the UI and every run process start quickly.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.curation import curation_dbt_models, near_duplicate_candidates, tool_call_validity
from assets.evaluation import evaluation_report, rl_evaluation_report
from assets.ingestion import raw_agent_logs
from assets.labelling import judge_labels
from assets.redaction import redacted_trajectories
from assets.reinforcement import rl_tuned_model
from assets.release import dataset_release
from assets.training import fine_tuned_model
from assets.validation import gx_checks
from pipeline.orchestration.automation import build_automation
from pipeline.orchestration.resources import build_resources, dbt_project
from pipeline.settings import get_settings
from pipeline.shell.production import TRAINING_RUN_TAGS

# The dbt profile reads the DuckDB path from here, so dbt and Dagster share one file.
os.environ.setdefault("FLYWHEEL_DUCKDB_PATH", str(get_settings().duckdb_path))
dbt_project.prepare_if_dev()

ingest = dg.AssetSelection.assets(raw_agent_logs, redacted_trajectories, judge_labels)
downstream = dg.AssetSelection.assets(
    tool_call_validity, near_duplicate_candidates, curation_dbt_models, dataset_release, fine_tuned_model,
    evaluation_report,
)
jobs, schedules, sensors = build_automation(ingest | downstream, ingest, downstream)
# RL is its own job, off the nightly schedule until it pays (README, "Learning from outcomes")
rl_job = dg.define_asset_job(
    "rl_job",
    selection=dg.AssetSelection.assets(rl_tuned_model, rl_evaluation_report),
    description="GRPO in the sandbox from the latest SFT model, then its evaluation against base, SFT and champion.",
    tags=TRAINING_RUN_TAGS,
)

defs = dg.Definitions(
    assets=[
        raw_agent_logs, redacted_trajectories, judge_labels, tool_call_validity, near_duplicate_candidates,
        curation_dbt_models, dataset_release, fine_tuned_model, evaluation_report, rl_tuned_model,
        rl_evaluation_report,
    ],
    asset_checks=gx_checks,
    jobs=[*jobs, rl_job],
    schedules=schedules,
    sensors=sensors,
    resources=build_resources(),
)
