"""Stage 6, evaluation: base vs challenger vs champion on held-out cases and in the sandbox,
then the promotion decision."""

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from assets.reinforcement import rl_tuned_model
from assets.training import fine_tuned_model, latest_registered_version
from pipeline.orchestration.automation import TRANSIENT_RETRY
from pipeline.orchestration.resources import LakeFSResource, MlflowResource
from pipeline.settings import get_settings
from pipeline.shell.audit import MODEL_NAME, TAG_PARENT_VERSION
from pipeline.shell.marts import read_parquet
from pipeline.shell.release import read_release_file


class EvaluationConfig(dg.Config):
    """Sized for a 2-core CPU (see README, "Training and evaluation"); a GPU scores every case."""

    max_cases: int = -1  # held-out decision points per model: -1 = 60 on CPU, all on a GPU; 0 = all
    sandbox_tasks: int = 6  # distinct tasks replayed in the simulator per model
    k: int = 2  # seeded trials per task: pass^k
    max_new_tokens: int = 64
    max_turns: int = 6
    engine: str = "batched"  # or "transformers": plain generate, one case at a time
    primary_metric: str = "action_accuracy"
    segment_metric: str = "action_accuracy"
    margin: float = 0.0  # the lower bound of the paired 95 % interval must exceed this
    tolerance: float = 0.1  # ... and no task type's upper bound may fall below -tolerance
    min_segment_cases: int = 10  # task types with fewer paired cases are too small to judge

    def case_limit(self) -> int:
        if self.max_cases >= 0:
            return self.max_cases
        import torch

        return 0 if torch.cuda.is_available() else 60


def _redacted(result: dict) -> dict:
    """Sandbox transcripts hold the simulated users' (synthetic) personal data: the example
    conversations of a model's result go through the same redaction as the training data
    before they are stored anywhere (metrics and names are left alone)."""
    from pipeline.core.redaction import redact_json

    texts = {key: result[key] for key in ("examples", "transcripts")}
    return {**result, **json.loads(redact_json(json.dumps(texts, default=str)).text)}


@dg.asset(
    deps=[fine_tuned_model],
    group_name="training",
    owners=["team:ml-platform"],
    kinds={"mlflow", "html"},
    tags={"stage": "evaluation"},
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Base model, challenger and champion on eval_cases from the same release commit: "
        "next-action tool-call accuracy (BFCL-style AST match), answer match, invalid-call "
        "rate, and sandbox success (tasks replayed in the simulator, pass^k), every rate with "
        "its n and 95 % Wilson interval, overall and per task type. HTML report logged to "
        "MLflow; the challenger becomes `champion` only if the lower bound of its paired 95 % "
        "interval over the incumbent exceeds the margin and no task type with enough cases "
        "shows an established regression beyond the tolerance."
    ),
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    lakefs: LakeFSResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    with mlflow.unreachable_is_failure():
        challenger = mlflow.client().get_model_version_by_alias(MODEL_NAME, "challenger")
        return _evaluate(context, config, lakefs, mlflow, challenger)


@dg.asset(
    deps=[rl_tuned_model],
    group_name="reinforcement",
    owners=["team:ml-platform"],
    kinds={"mlflow", "html"},
    tags={"stage": "evaluation"},
    retry_policy=TRANSIENT_RETRY,
    description=(
        "The RL model (rl_tuned_model) against the base model, the SFT model it started from and "
        "the champion, on the same held-out cases and sandbox tasks of its release (pass^k with "
        "intervals, per task type), with the paired gain of RL over its SFT parent; promotion as "
        "for any challenger (evaluation_report)."
    ),
)
def rl_evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    lakefs: LakeFSResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    with mlflow.unreachable_is_failure():
        client = mlflow.client()
        challenger = latest_registered_version(context, client, rl_tuned_model)
        parent = client.get_model_version(MODEL_NAME, challenger.tags[TAG_PARENT_VERSION])
        # named by how it was trained (parent-sft, or parent-grpo for RL continued from an RL model)
        label = f"parent-{parent.tags.get('training_method', 'sft')}"  # MLflow metric names allow no brackets
        return _evaluate(context, config, lakefs, mlflow, challenger, parent=(label, parent))


def _evaluate(context, config: EvaluationConfig, lakefs: LakeFSResource, mlflow: MlflowResource, challenger,
              parent: tuple[str, Any] | None = None) -> dg.MaterializeResult:
    """Base, champion, the challenger's `parent` (the model it was trained from, when that is
    neither), and the challenger itself on the challenger's release; then the promotion."""
    from pipeline.evaluation.cases import case_subset, load_case, spread_tasks, task_specs
    from pipeline.evaluation.promotion import compare, decide_promotion, incumbent_for
    from pipeline.evaluation.report import combine, write_report
    from pipeline.evaluation.run import evaluate_model
    from pipeline.learning.base_model import resolve_base_model
    from pipeline.learning.engine_policy import EnginePolicy
    from pipeline.shell.model_registry import version_by_alias

    settings = get_settings()
    client = mlflow.client()
    commit = challenger.tags["lakefs.commit"]
    frame = read_parquet(read_release_file(lakefs.repository(settings.datasets_repo), commit, "eval_cases.parquet"))
    cases = case_subset([load_case(row) for row in frame.to_dict("records")], config.case_limit())
    tasks = spread_tasks(task_specs(cases), config.sandbox_tasks)

    champion = version_by_alias(client, MODEL_NAME, "champion")
    downloads = Path(tempfile.mkdtemp(prefix="flywheel-eval-"))
    base_dir = Path(resolve_base_model(challenger.tags["base_model"], settings.state_dir / "models"))
    # name -> (how to get the model directory, what identifies its weights in the output cache)
    models = {"base": (lambda: base_dir, f"base-{base_dir.name}")}
    if champion is not None and champion.version != challenger.version:
        models["champion"] = _registered(mlflow, champion, downloads / "champion")
    parent_name = None
    if parent is not None:
        # the parent is evaluated once, under "champion" when it is the champion
        parent_name = "champion" if champion is not None and parent[1].version == champion.version else parent[0]
        if parent_name not in models and parent[1].version != challenger.version:
            models[parent_name] = _registered(mlflow, parent[1], downloads / "parent")
    models["challenger"] = _registered(mlflow, challenger, downloads / "challenger")

    results, generation = {}, {}
    for name, (model_dir, identity) in models.items():
        context.log.info(f"evaluating {name} on {len(cases)} cases and {len(tasks)} sandbox tasks x {config.k}")
        engine = _cached_engine(settings, config, model_dir, identity)
        started = time.perf_counter()
        results[name] = _redacted(evaluate_model(
            name, EnginePolicy(engine), cases, k=config.k, tasks=tasks, max_turns=config.max_turns,
            progress=lambda phase, done, total, name=name: context.log.info(
                f"evaluating {name}: {phase} {done}/{total}"),
        ))
        generation[name] = {"seconds": round(time.perf_counter() - started, 1),
                            **{k: v for k, v in engine.stats.to_dict().items() if isinstance(v, (int, float))}}

    incumbent, incumbent_name = incumbent_for(results.get("champion"), results["base"])
    decision = decide_promotion(results["challenger"], incumbent, incumbent_name, config.primary_metric,
                                config.margin, config.tolerance, config.segment_metric, config.min_segment_cases)
    gain_over_parent = {}
    if parent_name in results:
        # what training from the parent bought, on the same units (paired), whatever the promotion says
        gain_over_parent = {metric: compare(results["challenger"], results[parent_name], metric).to_dict()
                            for metric in (config.primary_metric, "pass_hat_k", "pass_at_1")}
    combined = combine(results, decision.to_dict(), {
        "parent": ({"name": parent_name, "version": parent[1].version, "gain": gain_over_parent}
                   if parent else None),
        "lakefs_commit": commit, "release": challenger.tags.get("lakefs.tag"),
        "challenger_version": challenger.version,
        "champion_version": champion.version if champion else None,
        "cases": len(cases), "cases_in_release": len(frame), "sandbox_tasks": len(tasks), "k": config.k,
        "generation": generation,
    })
    report_dir = settings.state_dir / "reports" / f"v{challenger.version}-{context.run.run_id[:8]}"
    report = write_report(combined, report_dir)

    client.log_artifacts(challenger.run_id, str(report_dir), artifact_path="evaluation")
    for key, value in _eval_metrics(results).items():
        client.log_metric(challenger.run_id, key, value)
    verdict = record_promotion(client, challenger.version, decision.promote, decision.reasons)

    primary = decision.deltas["primary"]
    return dg.MaterializeResult(metadata={
        "promotion": verdict,
        "promotion_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        "compared_with": incumbent_name,
        "challenger_version": int(challenger.version),
        "report": dg.MetadataValue.path(str(report)),
        "headline": dg.MetadataValue.json(_headline(results, config.primary_metric)),
        "improvement": primary["improvement"],
        "improvement_95": dg.MetadataValue.json([primary["low"], primary["high"]]),
        "cases": len(cases),
        "sandbox_tasks": len(tasks),
        **({"gain_over_parent": dg.MetadataValue.json(gain_over_parent)} if parent else {}),
    })


def record_promotion(client, version: str, promote: bool, reasons: list[str]) -> str:
    """The decision on the model version (tags `promotion`, `promotion_reasons`) and, when it
    wins, the champion alias; returns the verdict."""
    verdict = "promoted" if promote else "not promoted"
    client.set_model_version_tag(MODEL_NAME, version, "promotion", verdict)
    client.set_model_version_tag(MODEL_NAME, version, "promotion_reasons", "; ".join(reasons)[:5000])
    if promote:
        client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return verdict


def _cached_engine(settings, config: EvaluationConfig, model_dir, identity: str):
    from pipeline.learning.generate import CachedEngine, generation_engine

    name = f"{identity}-{config.engine}-{config.max_new_tokens}".replace("/", "_")
    return CachedEngine(lambda: generation_engine(model_dir(), config.engine, config.max_new_tokens),
                        settings.state_dir / "eval_cache" / f"{name}.jsonl")


def _headline(results: dict, primary_metric: str) -> dict:
    """Per model, the primary metric and pass^k as "k/n = rate [low, high]"."""
    out = {}
    for name, result in results.items():
        for metric in (primary_metric, "pass_hat_k"):
            rate = result["intervals"]["overall"].get(metric)
            if rate and rate["rate"] is not None:
                out[f"{name}.{metric}"] = (f"{rate['k']}/{rate['n']} = {rate['rate']:.3f} "
                                           f"[{rate['low']:.3f}, {rate['high']:.3f}]")
    return out


def _eval_metrics(results: dict) -> dict[str, float]:
    """MLflow metrics: every overall scalar, and each rate's interval and n."""
    metrics = {}
    for name, result in results.items():
        for metric, value in result["overall"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"eval.{name}.{metric}"] = float(value)
        for metric, rate in result["intervals"]["overall"].items():
            if rate["rate"] is not None:
                metrics[f"eval.{name}.{metric}.low"] = float(rate["low"])
                metrics[f"eval.{name}.{metric}.high"] = float(rate["high"])
                metrics[f"eval.{name}.{metric}.n"] = float(rate["n"])
    return metrics


def _registered(mlflow: MlflowResource, version, target: Path) -> tuple:
    """(how to get a registered version's model directory, what identifies its weights in the output cache)."""
    return (lambda: _model_dir(mlflow, version, target), f"{MODEL_NAME}-v{version.version}-{version.run_id}")


def _model_dir(mlflow: MlflowResource, version, target: Path) -> Path:
    """The merged model directory of a registered version, downloaded from MLflow."""
    from pipeline.shell.model_registry import download_model_dir

    mlflow.configure()
    try:
        return download_model_dir(f"models:/{MODEL_NAME}/{version.version}", target)
    except FileNotFoundError as missing:
        raise dg.Failure(str(missing), allow_retries=False) from missing
