"""Stage 6, evaluation: base vs challenger vs champion on held-out cases and in the sandbox,
then the promotion decision."""

import hashlib
import json
import tempfile
from pathlib import Path

import dagster as dg

from assets.training import fine_tuned_model
from pipeline.audit import MODEL_NAME
from pipeline.operations import TRANSIENT_RETRY
from pipeline.quality import read_parquet
from pipeline.release import read_release_file
from pipeline.resources import LakeFSResource, MlflowResource
from pipeline.settings import get_settings


class EvaluationConfig(dg.Config):
    """Defaults are sized for a 2-core CPU; raise them on a GPU."""

    max_cases: int = 8  # held-out decision points scored per model (0 = all)
    sandbox_tasks: int = 2  # distinct tasks replayed in the simulator per model
    k: int = 2  # seeded trials per task: pass^k
    max_new_tokens: int = 64
    max_turns: int = 4
    primary_metric: str = "action_accuracy"
    segment_metric: str = "action_accuracy"
    margin: float = 0.0  # the challenger must beat the incumbent by at least this
    tolerance: float = 0.1  # ... and lose no task type by more than this


def _subset(cases: list[dict], limit: int) -> list[dict]:
    if not limit or len(cases) <= limit:
        return cases
    return sorted(cases, key=lambda c: hashlib.sha256(c["case_id"].encode()).hexdigest())[:limit]


def _redacted(result: dict) -> dict:
    """Sandbox transcripts hold the simulated users' (synthetic) personal data: the example
    conversations of a model's result go through the same redaction as the training data
    before they are stored anywhere (metrics and names are left alone)."""
    from pipeline.redaction import redact_json

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
        "rate, and sandbox success (tasks replayed in the simulator, pass^k), every metric per "
        "task type. HTML report logged to MLflow; the challenger becomes `champion` only if it "
        "beats the incumbent by the margin and regresses no task type beyond the tolerance."
    ),
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    lakefs: LakeFSResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    with mlflow.unreachable_is_failure():
        return _evaluate(context, config, lakefs, mlflow)


def _evaluate(context, config: EvaluationConfig, lakefs: LakeFSResource,
              mlflow: MlflowResource) -> dg.MaterializeResult:
    from pipeline.evaluation.cases import load_case, task_specs
    from pipeline.evaluation.policy import ModelPolicy, training_generate_fn
    from pipeline.evaluation.promotion import decide_promotion, incumbent_for
    from pipeline.evaluation.report import combine, write_report
    from pipeline.evaluation.run import evaluate_model
    from pipeline.training.base_model import resolve_base_model

    settings = get_settings()
    client = mlflow.client()
    challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    commit = challenger.tags["lakefs.commit"]
    frame = read_parquet(read_release_file(lakefs.repository(settings.datasets_repo), commit, "eval_cases.parquet"))
    cases = _subset([load_case(row) for row in frame.to_dict("records")], config.max_cases)
    tasks = dict(list(task_specs(cases).items())[: config.sandbox_tasks])

    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    except Exception:  # noqa: BLE001 - MLflow raises RestException when the alias is unset
        champion = None
    downloads = Path(tempfile.mkdtemp(prefix="flywheel-eval-"))
    model_dirs = {"base": resolve_base_model(challenger.tags["base_model"], settings.state_dir / "models")}
    if champion is not None and champion.version != challenger.version:
        model_dirs["champion"] = _model_dir(mlflow, champion, downloads / "champion")
    model_dirs["challenger"] = _model_dir(mlflow, challenger, downloads / "challenger")

    results = {}
    for name, model_dir in model_dirs.items():
        context.log.info(f"evaluating {name} on {len(cases)} cases and {len(tasks)} sandbox tasks")
        policy = ModelPolicy(training_generate_fn(str(model_dir), config.max_new_tokens))
        results[name] = _redacted(evaluate_model(
            name, policy, cases, k=config.k, tasks=tasks, max_turns=config.max_turns,
            progress=lambda phase, done, total, name=name: context.log.info(
                f"evaluating {name}: {phase} {done}/{total}"),
        ))

    incumbent, incumbent_name = incumbent_for(results.get("champion"), results["base"])
    decision = decide_promotion(results["challenger"], incumbent, incumbent_name, config.primary_metric,
                                config.margin, config.tolerance, config.segment_metric)
    combined = combine(results, decision.to_dict(), {
        "lakefs_commit": commit, "release": challenger.tags.get("lakefs.tag"),
        "challenger_version": challenger.version,
        "champion_version": champion.version if champion else None,
        "cases": len(cases), "sandbox_tasks": len(tasks), "k": config.k,
    })
    report_dir = settings.state_dir / "reports" / f"v{challenger.version}-{context.run.run_id[:8]}"
    report = write_report(combined, report_dir)

    headline = {f"{name}.{metric}": value for name, result in results.items()
                for metric, value in result["overall"].items() if isinstance(value, (int, float))}
    client.log_artifacts(challenger.run_id, str(report_dir), artifact_path="evaluation")
    for key, value in headline.items():
        client.log_metric(challenger.run_id, f"eval.{key}", float(value))
    verdict = "promoted" if decision.promote else "not promoted"
    client.set_model_version_tag(MODEL_NAME, challenger.version, "promotion", verdict)
    client.set_model_version_tag(MODEL_NAME, challenger.version, "promotion_reasons",
                                 "; ".join(decision.reasons)[:5000])
    if decision.promote:
        client.set_registered_model_alias(MODEL_NAME, "champion", challenger.version)

    return dg.MaterializeResult(metadata={
        "promotion": verdict,
        "promotion_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        "compared_with": incumbent_name,
        "challenger_version": int(challenger.version),
        "report": dg.MetadataValue.path(str(report)),
        "headline": dg.MetadataValue.json(headline),
        "cases": len(cases),
        "sandbox_tasks": len(tasks),
    })


def _model_dir(mlflow: MlflowResource, version, target: Path) -> Path:
    """The merged model directory of a registered version, downloaded from MLflow."""
    mlflow_module = mlflow.configure()
    path = mlflow_module.artifacts.download_artifacts(
        artifact_uri=f"models:/{MODEL_NAME}/{version.version}", dst_path=str(target)
    )
    found = sorted(Path(path).rglob("config.json"))
    if not found:
        raise dg.Failure(f"{MODEL_NAME} v{version.version} has no model directory in its artifacts",
                         allow_retries=False)
    return found[0].parent
