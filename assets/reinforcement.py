"""Stage 5b, reinforcement learning: GRPO in the simulator's sandbox from the SFT model,
on the training split's tasks of the release; tracked and registered like any challenger.
Its own job (`rl_job`), not part of the nightly one until it pays (README, "Learning from
outcomes")."""

import hashlib
import json

import dagster as dg

from assets.release import dataset_release
from assets.training import (
    already_registered,
    fine_tuned_model,
    latest_registered_version,
    latest_release,
    register_model,
)
from pipeline.orchestration.automation import TRANSIENT_RETRY
from pipeline.orchestration.resources import LakeFSResource, MlflowResource
from pipeline.settings import get_settings
from pipeline.shell.audit import MODEL_NAME, TAG_PARENT_VERSION, TAG_RELEASE
from pipeline.version import code_version

RL_TASKS_FILE = "rl_tasks.parquet"


class RLTrainingConfig(dg.Config):
    """-1 means sized to the device: the CPU proof budget (README, "Learning from outcomes":
    about 15 minutes with its evaluation on 2 cores) or a GPU run sized for a gain."""

    init_from: str = "sft"  # "sft": the version fine_tuned_model registered last; or a version number
    steps: int = -1  # optimizer steps: -1 = 3 on CPU, 60 on a GPU
    tasks_per_step: int = -1  # tasks per step: -1 = 1 on CPU, 8 on a GPU
    group_size: int = 4  # episodes per task and step (GRPO's group)
    max_turns: int = 6  # policy turns per episode (as evaluation's sandbox)
    max_new_tokens: int = 64  # per policy turn (as evaluation)
    temperature: float = 1.0
    learning_rate: float = 1e-5
    beta: float = 0.04  # KL to the SFT model
    well_formed_weight: float = 0.1  # shaping, logged apart from the verified reward
    violation_weight: float = -0.5
    max_tasks: int = 0  # 0 = every training task of the release
    seed: int = 0

    def resolved(self, gpu: bool) -> dict:
        return {**self.model_dump(),
                "steps": self.steps if self.steps != -1 else (60 if gpu else 3),
                "tasks_per_step": self.tasks_per_step if self.tasks_per_step != -1 else (8 if gpu else 1)}


def parent_version(context, client, init_from: str):
    """The registered SFT version RL starts from."""
    if init_from != "sft":
        return client.get_model_version(MODEL_NAME, init_from)
    return latest_registered_version(context, client, fine_tuned_model)


def _evaluation_task_ids(eval_cases) -> set[str]:
    from pipeline.evaluation.cases import load_case, task_specs

    return set(task_specs(load_case(row) for row in eval_cases.to_dict("records")))


@dg.asset(
    deps=[fine_tuned_model, dataset_release],
    group_name="reinforcement",
    owners=["team:ml-platform"],
    kinds={"pytorch", "mlflow"},
    tags={"stage": "training"},
    retry_policy=TRANSIENT_RETRY,
    description=(
        "GRPO (TRL, rollout_func) from the SFT model in the simulator's sandbox: the policy's tool "
        "calls run against the task's shop state, the simulated user answers, the reward is the "
        "task's success checks on the final state (plus logged shaping terms); tool results and "
        "user turns are masked out of the loss; KL to the SFT model. Tasks: rl_tasks (training "
        "split only) of the latest release, read by commit id. One MLflow run with per-step "
        "rewards (overall and per task type), KL, episode length and rollouts/s; registered as "
        "a new flywheel-agent version (`challenger`) tagged with its SFT parent and release."
    ),
)
def rl_tuned_model(
    context: dg.AssetExecutionContext,
    config: RLTrainingConfig,
    lakefs: LakeFSResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    with mlflow.unreachable_is_failure():
        return _reinforce(context, config, lakefs, mlflow)


def _reinforce(context, config: RLTrainingConfig, lakefs: LakeFSResource, mlflow: MlflowResource):
    import torch

    from pipeline.learning.rl import RLConfig, train_grpo
    from pipeline.shell.marts import load_rl_tasks, read_parquet
    from pipeline.shell.mlflow_lakefs import LakeFSDatasetSource
    from pipeline.shell.model_registry import download_model_dir
    from pipeline.shell.release import read_release_file

    settings = get_settings()
    release = latest_release(context)
    commit = release["lakefs_merge_commit"]
    datasets = lakefs.repository(settings.datasets_repo)
    try:
        frame = read_parquet(read_release_file(datasets, commit, RL_TASKS_FILE))
    except Exception as missing:  # a release made before rl_tasks existed
        raise dg.Failure(f"release {release['tag']} has no {RL_TASKS_FILE}: curate and release again "
                         f"({type(missing).__name__})", allow_retries=False) from missing
    tasks = load_rl_tasks(frame)
    in_release = len(tasks)
    held_out = _evaluation_task_ids(read_parquet(read_release_file(datasets, commit, "eval_cases.parquet")))
    if leaked := sorted(set(tasks) & held_out):
        # curation keeps split groups apart; this guards the contract where RL would break it silently
        raise dg.Failure(f"{len(leaked)} RL tasks are also evaluation tasks (e.g. {leaked[0]}): refusing to train",
                         allow_retries=False)
    if config.max_tasks:
        tasks = dict(sorted(tasks.items(), key=lambda kv: hashlib.sha256(kv[0].encode()).hexdigest())
                     [:config.max_tasks])
    resolved = config.resolved(gpu=torch.cuda.is_available())
    if len(tasks) < resolved["tasks_per_step"]:
        raise dg.Failure(f"release {release['tag']} has {len(tasks)} training tasks with a task spec (max_tasks "
                         f"{config.max_tasks or 'unset'}); a step takes {resolved['tasks_per_step']}",
                         allow_retries=False)
    client = mlflow.client()
    parent = parent_version(context, client, config.init_from)
    params = {**resolved, "init_from": f"{MODEL_NAME}/{parent.version}", "tasks": len(tasks),
              "tasks_in_release": in_release}
    training_key = hashlib.sha256(json.dumps(
        {"commit": commit, "config": params, "code": code_version(), "method": "grpo"}, sort_keys=True,
    ).encode()).hexdigest()[:16]
    tags = {
        "lakefs.repo": settings.datasets_repo, "lakefs.commit": commit, TAG_RELEASE: release["tag"],
        "code_version": code_version(), "base_model": parent.tags.get("base_model", ""),
        "training_key": training_key, "dagster.run_id": context.run.run_id, "init_from": params["init_from"],
        TAG_PARENT_VERSION: str(parent.version), "training_method": "grpo",
    }
    version = already_registered(context, client, mlflow, training_key)
    if version is not None:
        return dg.MaterializeResult(metadata={
            "model_version": int(version.version), "parent_version": int(parent.version),
            "mlflow_run_id": version.run_id, "training_key": training_key, "reused_existing_version": True,
            TAG_RELEASE: release["tag"], "lakefs_commit": commit,
        })

    out_dir = settings.state_dir / "models" / "runs" / f"{context.run.run_id}-rl"
    mlflow_module = mlflow.configure()
    start_dir = download_model_dir(f"models:/{MODEL_NAME}/{parent.version}", out_dir.with_name(out_dir.name + "-init"))
    rl_config = RLConfig(
        steps=params["steps"], tasks_per_step=params["tasks_per_step"], group_size=config.group_size,
        max_turns=config.max_turns, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        learning_rate=config.learning_rate, beta=config.beta, well_formed_weight=config.well_formed_weight,
        violation_weight=config.violation_weight, seed=config.seed,
    )
    context.log.info(f"GRPO from {MODEL_NAME} v{parent.version} on {len(tasks)} training tasks, "
                     f"{rl_config.steps} steps x {rl_config.tasks_per_step} tasks x {rl_config.group_size} episodes")
    with mlflow.start_run(f"rl {release['tag']}", context.run.run_id, tags) as run:
        mlflow_module.log_params(params)
        uri = f"lakefs://{settings.datasets_repo}/{commit}/datasets/{RL_TASKS_FILE}"
        mlflow_module.log_input(mlflow_module.data.from_pandas(
            frame[["record_key", "task_type"]], source=LakeFSDatasetSource(uri), name="rl_tasks"), context="training")

        def log_step(step: int, metrics: dict) -> None:
            mlflow_module.log_metrics(metrics, step=step)
            context.log.info(f"RL step {step}: verified reward {metrics.get('rl.reward.verified', 0):.3f}, "
                             f"shaped {metrics.get('rl.reward.shaped', 0):+.3f}, kl {metrics.get('rl.kl', 0):.4f}")

        result = train_grpo(tasks, start_dir, out_dir, rl_config, on_log=log_step,
                            start_label=params["init_from"])
        mlflow_module.log_metrics(result.metrics())
        version = register_model(mlflow_module, client, out_dir, tags)
    last = result.history[-1] if result.history else {}
    return dg.MaterializeResult(metadata={
        "model_version": int(version.version),
        "parent_version": int(parent.version),
        "mlflow_run_id": run.info.run_id,
        "training_key": training_key,
        "reused_existing_version": False,
        TAG_RELEASE: release["tag"],
        "lakefs_commit": commit,
        "tasks": len(tasks),
        "episodes": result.episodes,
        "verified_reward_last_step": last.get("rl.reward.verified"),
        "rollouts_per_second": round(result.metrics()["rl_run.rollouts_per_second"], 3),
        "train_seconds": round(result.seconds, 1),
    })
