"""The UIs people use, driven in Debian's chromium by Playwright: the Dagster UI shows every
lifecycle asset with its lineage edges; the MLflow UI shows the registered model with its
champion alias. Screenshots are kept under test-artifacts/ for a person to look at."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shell.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLYWHEEL = str(Path(sys.executable).with_name("flywheel"))
LIFECYCLE = ["raw_agent_logs", "redacted_trajectories", "marts/sft_examples", "marts/eval_cases",
             "marts/curation_decisions", "dataset_release", "fine_tuned_model", "evaluation_report"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("ui-state")
    env = {**os.environ, "FLYWHEEL_STATE_DIR": str(state), "FLYWHEEL_DAGSTER_PORT": str(free_port()),
           "FLYWHEEL_MLFLOW_PORT": str(free_port())}
    env.pop("FLYWHEEL_MLFLOW_TRACKING_URI", None)
    up = subprocess.run([FLYWHEEL, "up", "--only", "mlflow", "--only", "dagster"], env=env,
                        capture_output=True, text=True, timeout=400)
    assert up.returncode == 0, up.stderr
    try:
        yield {"dagster": f"http://127.0.0.1:{env['FLYWHEEL_DAGSTER_PORT']}",
               "mlflow": f"http://127.0.0.1:{env['FLYWHEEL_MLFLOW_PORT']}"}
    finally:
        subprocess.run([FLYWHEEL, "down"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is installed by `make test` (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, url: str, wait_until: str = "networkidle"):
    page = browser.new_page(viewport={"width": 1800, "height": 1100})
    page.goto(url, wait_until=wait_until, timeout=90_000)
    skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit newsletter dialog
    if skip.count():
        skip.click()
    return page


def test_dagster_ui_shows_every_lifecycle_asset_with_its_lineage(stack, browser):
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    # the last stage's upstream lineage is the whole graph, landing files to evaluation
    lineage = _open(browser, f"{stack['dagster']}/assets/evaluation_report?view=lineage"
                             "&lineageScope=upstream&lineageDepth=30")
    lineage.wait_for_selector("text=evaluation_report", timeout=60_000)
    for name in ("raw_agent_logs", "dataset_release", "fine_tuned_model"):
        lineage.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    lineage.wait_for_timeout(1500)
    lineage.screenshot(path=str(ARTIFACTS / "dagster-lineage.png"))
    assert lineage.locator("svg path").count() > 20, "the graph draws its edges"

    import dagster as dg

    for name in LIFECYCLE:
        key = dg.AssetKey(name.split("/"))
        page = _open(browser, f"{stack['dagster']}/assets/{name}")
        page.wait_for_selector("text=Upstream assets", timeout=60_000)
        upstream = [" / ".join(k.path) for k in graph.get(key).parent_keys
                    if graph.get(k).is_materializable]
        for label in upstream:  # the lineage list loads after the page: wait for each edge
            page.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
        description_start = graph.get(key).description.split()[0]
        page.get_by_text(description_start).first.wait_for(timeout=30_000)  # rendered after the edges, under load
        page.screenshot(path=str(ARTIFACTS / f"dagster-{name.replace('/', '-')}.png"))
        text = page.inner_text("body")
        assert all(label in text for label in upstream), f"{name} shows its upstream {upstream}"
        assert description_start in text, f"{name} shows its description"


def test_mlflow_ui_shows_the_model_the_pipeline_registered_with_its_release_and_decision(stack, browser, tmp_path):
    """The pipeline's own registration (the training asset's `register_model`, the agent
    pyfunc with the model's files) and its own promotion record (the evaluation asset's
    `record_promotion`), seen in the MLflow UI: the champion alias, the decision and the
    lakeFS commit an auditor follows."""
    import mlflow
    from mlflow import MlflowClient

    from assets.evaluation import record_promotion
    from assets.training import register_model
    from pipeline.learning.base_model import tiny_model_dir
    from pipeline.shell.audit import MODEL_NAME

    commit = "c0ffee" * 10 + "abcd"
    mlflow.set_tracking_uri(stack["mlflow"])
    client = MlflowClient(stack["mlflow"])
    with mlflow.start_run():
        version = register_model(mlflow, client, tiny_model_dir(tmp_path), {"lakefs.commit": commit}).version
    record_promotion(client, version, True, ["promote: the challenger beats the base on action_accuracy"])

    # not "networkidle": MLflow's UI starts a telemetry web worker that may never go idle
    page = _open(browser, f"{stack['mlflow']}/#/models/{MODEL_NAME}", wait_until="domcontentloaded")
    page.wait_for_selector("text=champion", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "mlflow-registered-model.png"))
    text = page.inner_text("body")
    assert MODEL_NAME in text and "champion" in text and "challenger" in text
    page = _open(browser, f"{stack['mlflow']}/#/models/{MODEL_NAME}/versions/{version}",
                 wait_until="domcontentloaded")
    page.wait_for_selector(f"text={commit}", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "mlflow-model-version.png"))
    text = page.inner_text("body")
    assert "promoted" in text and "lakefs.commit" in text
