"""MLflow on a temporary sqlite store, through our resource: log, then find by tag."""

from pipeline.orchestration.resources import MlflowResource


def test_run_is_logged_and_found_by_dagster_run_id(tmp_path):
    resource = MlflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment_name="test-experiment",
        artifact_root=str(tmp_path / "artifacts"),
    )
    with resource.start_run("train", dagster_run_id="dagster-run-42", tags={"lakefs.commit": "abc"}) as run:
        mlflow = resource.configure()
        mlflow.log_param("lora_rank", 8)
        mlflow.log_metric("loss", 1.5, step=0)
        mlflow.log_metric("loss", 0.9, step=1)
        mlflow.log_text("hello", "notes/readme.txt")

    found = resource.configure().search_runs(
        experiment_ids=[resource.experiment_id()],
        filter_string="tags.`dagster.run_id` = 'dagster-run-42'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [run.info.run_id]
    stored = found[0]
    assert stored.data.params == {"lora_rank": "8"}
    assert stored.data.metrics["loss"] == 0.9
    assert stored.data.tags["lakefs.commit"] == "abc"
    artifact_dir = tmp_path / "artifacts" / "test-experiment"
    assert list(artifact_dir.rglob("readme.txt")), "artifact stored under the configured root"

    none = resource.configure().search_runs(
        experiment_ids=[resource.experiment_id()],
        filter_string="tags.`dagster.run_id` = 'other'",
        output_format="list",
    )
    assert none == []
