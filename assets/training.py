"""Stage 5, training: fine-tune from the exact release commit, tracked and registered in MLflow."""

import hashlib
import json
from dataclasses import replace

import dagster as dg
import pandas as pd

from assets.release import dataset_release
from pipeline.orchestration.automation import AFTER_BLOCKING_CHECKS, TRANSIENT_RETRY
from pipeline.orchestration.resources import LakeFSResource, MlflowResource
from pipeline.settings import get_settings
from pipeline.shell.audit import MODEL_NAME, TAG_RELEASE
from pipeline.shell.failpoints import failpoint
from pipeline.shell.marts import read_parquet
from pipeline.shell.release import read_release_file
from pipeline.version import code_version


class TrainingConfig(dg.Config):
    """Defaults chosen from measurements on a 2-core CPU (README, "Training and evaluation":
    `flywheel bench budget`). -1 means sized to the device: the measured CPU budget, or
    several epochs over the whole release on a GPU."""

    base_model: str = "smollm2-135m-instruct"  # or a local model dir, or a hub id
    # "base": each night trains the base model on the whole release; "champion": continue from
    # the current champion (the base model while there is none). Measured in the demo: 8 more
    # steps from the champion on the next night's release scored 17/60 against its 26/60
    # (paired -0.15 [-0.31, +0.02]), as more steps from the base did (README)
    init_from: str = "base"
    method: str = "full"  # or "lora"
    max_examples: int = 0  # 0 = all of sft_examples; steps draw their batches from all of them
    # optimizer steps (one batch of ~3,072 example tokens behind the shared system turn each, on
    # CPU): -1 = CPU_STEPS on CPU, `epochs` on a GPU
    max_steps: int = -1
    epochs: float = 3.0  # passes over the release when the step budget is not set (a GPU)
    batch_size: int = -1  # packed rows per step: -1 = 1 on CPU, 8 on a GPU
    grad_accum: int = 1
    max_length: int = 3072  # tokens per example; the demo's longest is ~2,400, the system turn alone ~1,330
    # 1e-4 constant for 6 steps (CPU_STEPS): the cheapest arm of `flywheel bench budget` on the
    # demo's release within noise of the best (27/60 vs 30/60 for 2e-4 x 8, paired -0.05
    # [-0.20, +0.10]), so that two nights fit the demo's 30 minutes (README "Training and evaluation")
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"  # any transformers schedule: constant, linear, cosine, ...
    warmup_steps: int = 0
    lora_r: int = 16
    seed: int = 0
    dpo: bool = False  # end with DPO on preference_pairs from the same release (when any)...
    dpo_steps: int = 2  # ...as the last steps of the budget (SFT gets the rest), on a LoRA adapter
    dpo_learning_rate: float = 5e-5
    dpo_beta: float = 0.1

    def resolved(self, gpu: bool) -> dict:
        """The settings training runs with on this device (what the training key and MLflow record)."""
        steps = self.max_steps if self.max_steps != -1 else (0 if gpu else CPU_STEPS)
        batch = self.batch_size if self.batch_size != -1 else (8 if gpu else 1)
        return {**self.model_dump(), "max_steps": steps, "batch_size": batch}


CPU_STEPS = 6


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
        "Fine-tuning of the base model (transformers; full or LoRA, assistant-only loss over the "
        "project's tool-calling chat template, packed sequences behind one shared system turn) "
        "on sft_examples read from the release's lakeFS commit id, with a step budget measured "
        "on this CPU (larger on a GPU); optionally ending with DPO on preference_pairs. One "
        "MLflow run with params, per-step metrics, the lakefs:// dataset input and audit tags; "
        "the merged model is registered as a new version of flywheel-agent under the alias "
        "`challenger`."
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
    import torch

    from pipeline.learning.base_model import resolve_base_model
    from pipeline.learning.train import TrainConfig, train_dpo, train_sft
    from pipeline.shell.mlflow_lakefs import LakeFSDatasetSource
    from pipeline.shell.model_registry import download_model_dir, version_by_alias

    settings = get_settings()
    release = latest_release(context)
    commit = release["lakefs_merge_commit"]
    datasets = lakefs.repository(settings.datasets_repo)
    sft_uri = f"lakefs://{settings.datasets_repo}/{commit}/datasets/sft_examples.parquet"
    frame = select_examples(
        read_parquet(read_release_file(datasets, commit, "sft_examples.parquet")),
        config.max_examples,
    )
    if config.init_from not in ("champion", "base"):
        raise dg.Failure(f"init_from must be champion or base, got {config.init_from!r}", allow_retries=False)
    client = mlflow.client()
    parent = version_by_alias(client, MODEL_NAME, "champion") if config.init_from == "champion" else None
    params = {**config.resolved(gpu=torch.cuda.is_available()),
              "init_from": f"{MODEL_NAME}/{parent.version}" if parent is not None else config.base_model}
    # Same release + same config + same code = same model: a re-run (after MLflow was
    # unreachable, say) reuses the registered version instead of registering a duplicate.
    training_key = hashlib.sha256(
        json.dumps({"commit": commit, "config": params, "code": code_version()}, sort_keys=True).encode()
    ).hexdigest()[:16]
    tags = {
        "lakefs.repo": settings.datasets_repo, "lakefs.commit": commit, TAG_RELEASE: release["tag"],
        "code_version": code_version(), "base_model": config.base_model, "training_key": training_key,
        "dagster.run_id": context.run.run_id, "init_from": params["init_from"],
    }
    version = already_registered(context, client, mlflow, training_key)
    if version is not None:
        return dg.MaterializeResult(metadata={
            "model_version": int(version.version), "mlflow_run_id": version.run_id,
            "training_key": training_key, "reused_existing_version": True, TAG_RELEASE: release["tag"],
        })

    out_dir = settings.state_dir / "models" / "runs" / context.run.run_id
    if parent is not None:
        mlflow.configure()
        start_dir = download_model_dir(f"models:/{MODEL_NAME}/{parent.version}",
                                       out_dir.with_name(out_dir.name + "-init"))
        context.log.info(f"continuing from the champion, {MODEL_NAME} v{parent.version}")
    else:
        start_dir = resolve_base_model(config.base_model, settings.state_dir / "models")
    examples = [
        {"messages": json.loads(row.messages), "tools": json.loads(row.tools), "weight": row.weight}
        for row in frame.itertuples()
    ]
    pairs = read_parquet(read_release_file(datasets, commit, "preference_pairs.parquet")) if config.dpo else None
    if pairs is not None and not len(pairs):
        context.log.warning("DPO is on but the release has no preference pairs; SFT only")
        pairs = None
    steps, dpo_steps = params["max_steps"], config.dpo_steps if pairs is not None else 0
    if dpo_steps and steps and steps <= dpo_steps:
        raise dg.Failure(f"dpo_steps ({dpo_steps}) must be fewer than max_steps ({steps})", allow_retries=False)
    train_config = TrainConfig(
        base_model=config.base_model, method=config.method, max_steps=steps - dpo_steps if steps else -1,
        epochs=config.epochs, batch_size=params["batch_size"], grad_accum=config.grad_accum,
        max_length=config.max_length,
        learning_rate=config.learning_rate, lr_scheduler=config.lr_scheduler, warmup_steps=config.warmup_steps,
        lora_r=config.lora_r, lora_alpha=2 * config.lora_r, seed=config.seed, dpo=pairs is not None,
        dpo_beta=config.dpo_beta,
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

        result = train_sft(examples, start_dir, out_dir, train_config, on_log=log_step)
        mlflow_module.log_metrics(result.metrics())
        if pairs is not None:
            dpo_config = replace(train_config, method="lora", max_steps=dpo_steps or -1,
                                 learning_rate=config.dpo_learning_rate, lr_scheduler="constant", warmup_steps=0)
            dpo_dir = out_dir.with_name(out_dir.name + "-dpo")
            dpo = train_dpo(pairs.to_dict("records"), out_dir, dpo_dir, dpo_config,
                            on_log=lambda step, m: mlflow_module.log_metrics(
                                {f"dpo.{k}": float(v) for k, v in m.items()
                                 if isinstance(v, (int, float))}, step=step))
            mlflow_module.log_metrics({f"dpo.{k}": v for k, v in dpo.metrics().items()})
            out_dir = dpo_dir
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


def latest_registered_version(context, client, asset: dg.AssetsDefinition):
    """The flywheel-agent version `asset` (a training asset) registered in its newest materialization."""
    event = context.instance.get_latest_materialization_event(asset.key)
    if event is None:
        raise dg.Failure(f"no model yet: materialize {asset.key.to_user_string()} first", allow_retries=False)
    return client.get_model_version(MODEL_NAME, str(event.asset_materialization.metadata["model_version"].value))


def already_registered(context, client, mlflow: MlflowResource, training_key: str):
    """The version an earlier attempt of this training (same training key: release, config,
    code) registered, made `challenger` again; None when there is none. Ends the MLflow runs
    dead attempts left RUNNING first."""
    for orphan in end_orphaned_runs(context, client, mlflow.experiment_id(), training_key):
        context.log.warning(f"MLflow run {orphan} of an earlier, dead attempt was left RUNNING; ended it as KILLED")
    existing = client.search_model_versions(f"name = '{MODEL_NAME}' and tags.training_key = '{training_key}'")
    if not existing:
        return None
    version = existing[0]
    context.log.info(f"{MODEL_NAME} v{version.version} was already trained with this release, config and code")
    client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
    return version


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
    from pipeline.learning.agent_model import AgentModel

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
