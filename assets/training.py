"""Stage 5, training: fine-tune from the exact release commit, tracked and registered in MLflow."""

import hashlib
import json

import dagster as dg
import pandas as pd

from assets.release import dataset_release
from pipeline.audit import MODEL_NAME, TAG_RELEASE
from pipeline.faults import failpoint
from pipeline.operations import AFTER_BLOCKING_CHECKS, TRANSIENT_RETRY
from pipeline.quality import read_parquet
from pipeline.release import read_release_file
from pipeline.resources import LakeFSResource, MlflowResource
from pipeline.settings import get_settings
from pipeline.version import code_version


class TrainingConfig(dg.Config):
    """Defaults are sized for a 2-core CPU (a few minutes); a GPU is used when present."""

    base_model: str = "smollm2-135m-instruct"  # or a local model dir, or a hub id
    method: str = "lora"  # or "full"
    max_examples: int = 24  # 0 = all of sft_examples
    max_steps: int = 3
    batch_size: int = 1
    grad_accum: int = 1
    max_length: int = 2048  # the system turn with 11 tool schemas alone is ~1.3k tokens
    learning_rate: float = 2e-4
    lora_r: int = 16
    seed: int = 0
    dpo: bool = False  # after SFT, DPO on preference_pairs from the same release (when any)
    dpo_beta: float = 0.1


def latest_release(context) -> dict:
    """The metadata of the newest dataset_release materialization: what training reads."""
    event = context.instance.get_latest_materialization_event(dataset_release.key)
    if event is None:
        raise dg.Failure("no dataset release yet: materialize dataset_release first", allow_retries=False)
    metadata = event.asset_materialization.metadata
    return {key: metadata[key].value for key in ("lakefs_merge_commit", "tag", "uris")}


def select_examples(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """A deterministic, content-independent subset (hash of the record key), keeping the mix."""
    if not limit or len(frame) <= limit:
        return frame
    order = frame["record_key"].map(lambda k: hashlib.sha256(k.encode()).hexdigest())
    return frame.assign(_order=order).sort_values("_order").head(limit).drop(columns="_order")


@dg.asset(
    deps=[dataset_release],
    group_name="training",
    owners=["team:ml-platform"],
    kinds={"pytorch", "mlflow"},
    tags={"stage": "training"},
    retry_policy=TRANSIENT_RETRY,
    automation_condition=AFTER_BLOCKING_CHECKS,
    description=(
        "LoRA fine-tuning (transformers + PEFT, assistant-only loss over the project's "
        "tool-calling chat template, packed sequences) on sft_examples read from the release's "
        "lakeFS commit id. One MLflow run with params, per-step metrics, the lakefs:// dataset "
        "input and audit tags; the merged model is registered as a new version of "
        "flywheel-agent under the alias `challenger`."
    ),
)
def fine_tuned_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    lakefs: LakeFSResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    with mlflow.unreachable_is_failure():
        return _fine_tune(context, config, lakefs, mlflow)


def _fine_tune(context, config: TrainingConfig, lakefs: LakeFSResource,
               mlflow: MlflowResource) -> dg.MaterializeResult:
    from pipeline.mlflow_lakefs import LakeFSDatasetSource
    from pipeline.training.base_model import resolve_base_model
    from pipeline.training.train import TrainConfig, train_dpo, train_sft

    settings = get_settings()
    release = latest_release(context)
    commit = release["lakefs_merge_commit"]
    datasets = lakefs.repository(settings.datasets_repo)
    sft_uri = f"lakefs://{settings.datasets_repo}/{commit}/datasets/sft_examples.parquet"
    frame = select_examples(
        read_parquet(read_release_file(datasets, commit, "sft_examples.parquet")),
        config.max_examples,
    )
    params = config.model_dump()
    # Same release + same config + same code = same model: a re-run (after MLflow was
    # unreachable, say) reuses the registered version instead of registering a duplicate.
    training_key = hashlib.sha256(
        json.dumps({"commit": commit, "config": params, "code": code_version()}, sort_keys=True).encode()
    ).hexdigest()[:16]
    tags = {
        "lakefs.repo": settings.datasets_repo, "lakefs.commit": commit, TAG_RELEASE: release["tag"],
        "code_version": code_version(), "base_model": config.base_model, "training_key": training_key,
        "dagster.run_id": context.run.run_id,
    }
    client = mlflow.client()
    for orphan in end_orphaned_runs(context, client, mlflow.experiment_id(), training_key):
        context.log.warning(f"MLflow run {orphan} of an earlier, dead attempt was left RUNNING; ended it as KILLED")
    existing = client.search_model_versions(f"name = '{MODEL_NAME}' and tags.training_key = '{training_key}'")
    if existing:
        version = existing[0]
        context.log.info(f"{MODEL_NAME} v{version.version} was already trained on this release and config")
        client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
        return dg.MaterializeResult(metadata={
            "model_version": int(version.version), "mlflow_run_id": version.run_id,
            "training_key": training_key, "reused_existing_version": True, TAG_RELEASE: release["tag"],
        })

    base_dir = resolve_base_model(config.base_model, settings.state_dir / "models")
    out_dir = settings.state_dir / "models" / "runs" / context.run.run_id
    examples = [
        {"messages": json.loads(row.messages), "tools": json.loads(row.tools), "weight": row.weight}
        for row in frame.itertuples()
    ]
    train_config = TrainConfig(
        base_model=config.base_model, method=config.method, max_steps=config.max_steps,
        batch_size=config.batch_size, grad_accum=config.grad_accum, max_length=config.max_length,
        learning_rate=config.learning_rate, lora_r=config.lora_r, lora_alpha=2 * config.lora_r,
        seed=config.seed, dpo=config.dpo, dpo_beta=config.dpo_beta,
    )
    mlflow_module = mlflow.configure()
    with mlflow.start_run(f"fine-tune {release['tag']}", context.run.run_id, tags) as run:
        mlflow_module.log_params({**params, "examples_available": len(frame)})
        dataset = mlflow_module.data.from_pandas(
            frame[["record_key", "task_type", "weight"]], source=LakeFSDatasetSource(sft_uri),
            name="sft_examples",
        )
        mlflow_module.log_input(dataset, context="training")
        def log_step(step: int, metrics: dict) -> None:
            failpoint("training.step_logged")
            mlflow_module.log_metrics(
                {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

        result = train_sft(examples, base_dir, out_dir, train_config, on_log=log_step)
        mlflow_module.log_metrics(result.metrics())
        if config.dpo:
            pairs = read_parquet(read_release_file(datasets, commit, "preference_pairs.parquet"))
            if len(pairs):
                dpo_dir = out_dir.with_name(out_dir.name + "-dpo")
                dpo = train_dpo(pairs.to_dict("records"), out_dir, dpo_dir, train_config,
                                on_log=lambda step, m: mlflow_module.log_metrics(
                                    {f"dpo.{k}": float(v) for k, v in m.items()
                                     if isinstance(v, (int, float))}, step=step))
                mlflow_module.log_metrics({f"dpo.{k}": v for k, v in dpo.metrics().items()})
                out_dir = dpo_dir
            else:
                context.log.warning("DPO is on but the release has no preference pairs; SFT only")
        version = register_model(mlflow_module, client, out_dir, tags)
    return dg.MaterializeResult(metadata={
        "model_version": int(version.version),
        "mlflow_run_id": run.info.run_id,
        "training_key": training_key,
        "reused_existing_version": False,
        TAG_RELEASE: release["tag"],
        "lakefs_commit": commit,
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "padding_fraction": round(result.padding_fraction, 4),
        "examples": result.examples,
        "device": result.device,
    })


def end_orphaned_runs(context, client, experiment_id: str, training_key: str) -> list[str]:
    """End as KILLED the MLflow runs of this training that an attempt left RUNNING when it
    died (the process, or the tracking server under it), so that the MLflow UI does not show
    them training forever. A run is an orphan when its Dagster run is this one (an earlier
    attempt: retries run one at a time) or a finished one; a run of a Dagster run still in
    progress, or of one this instance does not know, is left alone."""
    orphans = []
    for run in client.search_runs([experiment_id], f"tags.training_key = '{training_key}' "
                                                   "and attributes.status = 'RUNNING'"):
        owner = run.data.tags.get("dagster.run_id")
        owner_run = context.instance.get_run_by_id(owner) if owner else None
        if owner != context.run.run_id and (owner_run is None or not owner_run.is_finished):
            continue
        client.set_tag(run.info.run_id, "flywheel.ended_by",
                       f"dagster run {context.run.run_id}: its attempt died without ending it")
        client.set_terminated(run.info.run_id, status="KILLED")
        orphans.append(run.info.run_id)
    return orphans


def register_model(mlflow_module, client, model_dir, tags: dict[str, str]):
    from pipeline.agent_model import AgentModel

    info = mlflow_module.pyfunc.log_model(
        name="model", python_model=AgentModel(), artifacts={"model_dir": str(model_dir)},
        # Explicit: inferring requirements would import and probe the model.
        pip_requirements=["torch==2.13.0", "transformers==5.23.0"],
    )
    # The version is created with its tags in one request, so a run that dies right after
    # still leaves a version that a re-run finds by its training_key.
    version = mlflow_module.register_model(info.model_uri, MODEL_NAME, tags=tags)
    failpoint("training.registered")
    client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
    return version
