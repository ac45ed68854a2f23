"""The deploy files, validated as far as this machine allows (no Docker engine, no Kubernetes):
every YAML parses; Kubernetes core/apps/batch objects match the API models of the official
``kubernetes`` client field by field (unknown keys, wrong types and missing required fields fail);
KubeRay objects match a schema written from KubeRay's ray.io/v1 reference, with their pod templates
checked as Kubernetes PodTemplateSpecs; the compose file's structure; the Ray cluster launcher
config through Ray's own validation; and no password anywhere."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
# Password-looking literals: a URL with user:password@, password=/passwd= assignments, and
# environment or config keys named like a password with a literal value.
PASSWORD_LITERAL = re.compile(
    r"://[^:/@\s]+:[^@\s/]+@"
    r"|\b(password|passwd|pwd)[ \t]*=[ \t]*(?![\'\"]?[<$])\S"
    r"|(?-i:\b[A-Z_]*PASSWORD\b)[ \t]*[:=][ \t]*(?!/run/secrets|\$|<)[^\s]",
    re.IGNORECASE,
)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.name}:{d.get('kind')}/{d['metadata']['name']}", d) for p in K8S_FILES for d in documents(p)]


# --- Kubernetes API models -----------------------------------------------------------------------

_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def strict_check(data: Any, type_name: str, where: str = "") -> list[str]:
    """Every way ``data`` differs from the client's model ``type_name``: unknown keys, wrong types.
    (The models' own constructors check required fields; :func:`deserialize` runs them.)"""
    from kubernetes import client

    if data is None:
        return []
    if type_name.startswith("list["):
        if not isinstance(data, list):
            return [f"{where}: expected a list, got {type(data).__name__}"]
        return [
            e for i, item in enumerate(data) for e in strict_check(item, type_name[5:-1], f"{where}[{i}]")
        ]
    if type_name.startswith(("dict(", "dict[")):  # "dict(str, str)" in older clients, "dict[str, str]" now
        value_type = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping, got {type(data).__name__}"]
        return [e for k, v in data.items() for e in strict_check(v, value_type, f"{where}.{k}")]
    if type_name in _PRIMITIVES:
        ok = isinstance(data, _PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(data, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {data!r}"]
    if type_name in ("object", "datetime", "date"):
        return []
    model = getattr(client, type_name)
    if not isinstance(data, dict):
        return [f"{where}: expected a {type_name} mapping, got {type(data).__name__}"]
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    errors = [f"{where}.{key}: not a field of {type_name}" for key in data if key not in by_key]
    for key, value in data.items():
        if key in by_key:
            errors += strict_check(value, model.openapi_types[by_key[key]], f"{where}.{key}")
    return errors


def deserialize(data: dict[str, Any], type_name: str) -> Any:
    """The client's own deserializer: builds the model, whose setters reject missing required fields."""
    from kubernetes.client import ApiClient

    return ApiClient()._ApiClient__deserialize(data, type_name)


def model_name(document: dict[str, Any]) -> str:
    group_version = document["apiVersion"].split("/")[-1]
    return f"V{group_version[1:].capitalize()}{document['kind']}" if group_version.startswith("v") else ""


# --- KubeRay (ray.io/v1), from the KubeRay CRD API reference ----------------------------------------

_POD_TEMPLATE = {"type": "object", "required": ["spec"]}  # checked as a V1PodTemplateSpec below
_RAY_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
_HEAD_GROUP = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": _POD_TEMPLATE,
        "rayStartParams": _RAY_START_PARAMS,
        "serviceType": {"type": "string"},
        "headService": {"type": "object"},
        "enableIngress": {"type": "boolean"},
        "replicas": {"type": "integer"},
        "suspend": {"type": "boolean"},
        "labels": {"type": "object"},
        "resources": {"type": "object"},
    },
}
_WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template"],
    "additionalProperties": False,
    "properties": {
        "groupName": {"type": "string", "maxLength": 63},
        "template": _POD_TEMPLATE,
        "rayStartParams": _RAY_START_PARAMS,
        "replicas": {"type": "integer", "minimum": 0},
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 0},
        "numOfHosts": {"type": "integer", "minimum": 1},
        "idleTimeoutSeconds": {"type": "integer"},
        "scaleStrategy": {"type": "object"},
        "suspend": {"type": "boolean"},
        "labels": {"type": "object"},
        "resources": {"type": "object"},
    },
}
RAY_CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "additionalProperties": False,
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {"type": "object"},
        "headServiceAnnotations": {"type": "object"},
        "headGroupSpec": _HEAD_GROUP,
        "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
        "authOptions": {"type": "object"},
        "gcsFaultToleranceOptions": {"type": "object"},
        "upgradeStrategy": {"type": "object"},
    },
}
RAY_JOB_SPEC = {
    "type": "object",
    "required": ["entrypoint"],
    "additionalProperties": False,
    "properties": {
        "entrypoint": {"type": "string", "minLength": 1},
        "rayClusterSpec": RAY_CLUSTER_SPEC,
        "clusterSelector": {"type": "object"},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "activeDeadlineSeconds": {"type": "integer", "minimum": 0},
        "backoffLimit": {"type": "integer", "minimum": 0},
        "submitterPodTemplate": _POD_TEMPLATE,
        "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
        "runtimeEnvYAML": {"type": "string"},
        "jobId": {"type": "string"},
        "metadata": {"type": "object"},
        "entrypointNumCpus": {"type": "number"},
        "entrypointNumGpus": {"type": "number"},
        "entrypointResources": {"type": "string"},
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
        "deletionStrategy": {"type": "object"},
        "submitterConfig": {"type": "object"},
    },
}
KUBERAY = {"RayCluster": RAY_CLUSTER_SPEC, "RayJob": RAY_JOB_SPEC}


def ray_cluster_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document["spec"]
    return (
        [spec]
        if document["kind"] == "RayCluster"
        else [spec["rayClusterSpec"]]
        if "rayClusterSpec" in spec
        else []
    )


def pod_templates(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for cluster in ray_cluster_specs(document):
        out.append(("headGroupSpec.template", cluster["headGroupSpec"]["template"]))
        out += [
            (f"workerGroupSpecs[{g['groupName']}].template", g["template"])
            for g in cluster.get("workerGroupSpecs", [])
        ]
    if "submitterPodTemplate" in document["spec"]:
        out.append(("submitterPodTemplate", document["spec"]["submitterPodTemplate"]))
    return out


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a KubeRay object (head, workers, submitter)."""
    return [
        c
        for _, t in pod_templates(document)
        for c in t["spec"].get("containers", []) + t["spec"].get("initContainers", [])
    ]


# --- tests -------------------------------------------------------------------------------------------


def test_the_deploy_folder_has_every_piece():
    for name in (
        "Dockerfile",
        "docker-compose.yaml",
        "README.md",
        "ray/cluster.yaml",
        "k8s/raycluster.yaml",
        "k8s/rayjob.yaml",
        "k8s/cronjob.yaml",
        "k8s/mlflow.yaml",
        "k8s/configmap.yaml",
    ):
        assert (DEPLOY / name).is_file(), name


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path):
    assert documents(path), f"{path} holds no YAML document"


@pytest.mark.parametrize(
    "name, document",
    [o for o in k8s_objects() if o[1]["kind"] not in KUBERAY],
    ids=[o[0] for o in k8s_objects() if o[1]["kind"] not in KUBERAY],
)
def test_kubernetes_objects_match_the_api_models(name, document):
    type_name = model_name(document)
    assert strict_check(document, type_name) == []
    obj = deserialize(document, type_name)
    assert obj.kind == document["kind"] and obj.metadata.name == document["metadata"]["name"]
    assert obj.metadata.namespace == "foreseer"


def test_the_strict_check_fails_on_unknown_and_mistyped_fields_and_missing_required_ones():
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}
    assert strict_check(good, "V1ConfigMap") == []
    assert strict_check({**good, "dta": {}}, "V1ConfigMap") == [".dta: not a field of V1ConfigMap"]
    assert strict_check({**good, "data": {"a": 1}}, "V1ConfigMap") == [".data.a: expected str, got 1"]
    container = {"name": "c", "image": "i", "env": [{"name": "A", "valeu": "b"}]}
    assert strict_check(container, "V1Container") == [".env[0].valeu: not a field of V1EnvVar"]
    with pytest.raises(ValueError, match="name"):
        deserialize({"image": "i"}, "V1Container")  # a container without its required name


@pytest.mark.parametrize(
    "name, document",
    [o for o in k8s_objects() if o[1]["kind"] in KUBERAY],
    ids=[o[0] for o in k8s_objects() if o[1]["kind"] in KUBERAY],
)
def test_kuberay_objects_match_the_ray_io_v1_schema_and_hold_valid_pod_templates(name, document):
    import jsonschema

    assert document["apiVersion"] == "ray.io/v1"
    assert strict_check(document["metadata"], "V1ObjectMeta") == []
    jsonschema.validate(document["spec"], KUBERAY[document["kind"]])
    for where, template in pod_templates(document):
        assert strict_check(template, "V1PodTemplateSpec", where) == []
        deserialize(template, "V1PodTemplateSpec")
    for cluster in ray_cluster_specs(document):
        for group in cluster.get("workerGroupSpecs", []):
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_the_kuberay_schema_rejects_a_misspelt_field():
    import jsonschema

    document = next(d for _, d in k8s_objects() if d["kind"] == "RayCluster")
    spec = {**document["spec"], "workerGroupSpec": []}
    with pytest.raises(jsonschema.ValidationError, match="workerGroupSpec"):
        jsonschema.validate(spec, RAY_CLUSTER_SPEC)


def test_the_ray_cluster_has_a_cpu_head_and_gpu_workers():
    for _, document in k8s_objects():
        for cluster in ray_cluster_specs(document) if document["kind"] in KUBERAY else []:
            head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
            assert "nvidia.com/gpu" not in head["resources"]["limits"]
            gpus = [
                g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
                for g in cluster["workerGroupSpecs"]
            ]
            assert gpus and all(g == "1" for g in gpus)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_ray_token_auth_is_on_in_every_ray_container_with_the_token_from_a_secret():
    checked = 0
    for _, document in k8s_objects():
        for container in containers(document) if document["kind"] in KUBERAY else []:
            env = env_of(container)
            assert env["RAY_AUTH_MODE"]["value"] == "token", container["name"]
            assert "value" not in env["RAY_AUTH_TOKEN"]
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
                "name": "foreseer-ray-token",
                "key": "auth_token",
            }
            checked += 1
    assert checked >= 5  # RayCluster head + worker, RayJob head + worker + submitter


def all_pod_containers() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, document in k8s_objects():
        if document["kind"] in KUBERAY:
            out += [(name, c) for c in containers(document)]
        elif document["kind"] in ("Deployment", "CronJob"):
            spec = (
                document["spec"]["template"]["spec"]
                if document["kind"] == "Deployment"
                else (document["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            )
            out += [(name, c) for c in spec["containers"] + spec.get("initContainers", [])]
    return out


def test_postgresql_credentials_only_come_from_a_secret():
    users = 0
    for name, container in all_pod_containers():
        env = env_of(container)
        uses_db = "PGPASSWORD" in env or any("configMapRef" in e for e in container.get("envFrom", []))
        if container["name"] == "ray-job-submitter":
            continue
        assert uses_db, f"{name}/{container['name']} has no database settings"
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "foreseer-postgres",
            "key": "password",
        }
        users += 1
    assert users >= 6
    assert not [d for _, d in k8s_objects() if d["kind"] == "Secret"], (
        "Secrets are created by the operator, not shipped"
    )


def test_the_mlflow_server_runs_with_authentication_on():
    deployment = next(
        d for _, d in k8s_objects() if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--app-name") + 1] == "basic-auth"
    env = env_of(container)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "foreseer-mlflow-admin"
    compose = documents(DEPLOY / "docker-compose.yaml")[0]
    command = compose["services"]["mlflow"]["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"


def test_the_cronjob_runs_foreseer_on_a_schedule_without_overlap():
    cron = next(d for _, d in k8s_objects() if d["kind"] == "CronJob")
    assert len(cron["spec"]["schedule"].split()) == 5 and cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["foreseer", "run"]
    rayjob = next(d for _, d in k8s_objects() if d["kind"] == "RayJob")
    assert shlex.split(rayjob["spec"]["entrypoint"])[:2] == ["foreseer", "run"]


def test_the_job_files_the_deploy_files_ship_are_valid_foreseer_jobs(tmp_path):
    from foreseer.spec import load_job

    config = next(d for _, d in k8s_objects() if d["metadata"]["name"] == "foreseer-config")
    shipped = {
        "compose": (DEPLOY / "jobs" / "job.yaml").read_text(),
        **{k: v for k, v in config["data"].items() if k.endswith(".yaml")},
    }
    for name, text in shipped.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        job = load_job(tmp_path / f"{name}.yaml")
        assert job.tracking_uri.startswith("postgresql+psycopg://foreseer@"), name
    assert load_job(tmp_path / "job-gpu.yaml.yaml").resources.gpus == 0.5


def test_the_compose_file_is_complete_and_consistent():
    compose = documents(DEPLOY / "docker-compose.yaml")[0]
    services = compose["services"]
    assert {"postgres", "mlflow", "foreseer-init", "foreseer", "scheduler"} <= set(services)
    assert services["scheduler"]["command"] == ["foreseer", "scheduler"]
    assert "profiles" not in services["scheduler"], "`docker compose up` starts the scheduler"
    built = {s["image"] for s in services.values() if "build" in s}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "build" not in service and service["image"].startswith("foreseer:"):
            assert service["image"] in built, f"{name} uses an image no service builds"
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on a missing service {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} mounts an undeclared volume {source}"
            else:
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which deploy/ lacks"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name} uses an undeclared secret {secret}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert services["foreseer-init"]["command"] == ["foreseer", "db", "upgrade"]
    assert services["mlflow"]["depends_on"]["foreseer-init"]["condition"] == "service_completed_successfully"
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/")


def test_compose_passwords_come_from_secret_files_only():
    compose = documents(DEPLOY / "docker-compose.yaml")[0]
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "TOKEN" in key:
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (
                    f"{name}: {key}={value}"
                )


def test_the_ray_cluster_launcher_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = documents(DEPLOY / "ray" / "cluster.yaml")[0]
    prepared = prepare_config(config)  # what `ray up` does before it talks to the cloud
    validate_config(prepared)
    types = prepared["available_node_types"]
    assert types[prepared["head_node_type"]]["resources"]["GPU"] == 0
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())
    run_options = " ".join(config["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in run_options and "RAY_AUTH_TOKEN_FILE=" in run_options
    # one folder on every node for Tune's trial checkpoints, where the shipped job keeps its workdir
    assert "-v /mnt/foreseer:/srv/foreseer" in run_options
    assert any("mount -t nfs4" in command for command in config["initialization_commands"])
    assert documents(DEPLOY / "jobs" / "job.yaml")[0]["workdir"].startswith("/srv/foreseer/")


def test_rays_validation_rejects_an_unknown_node_type_field():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = documents(DEPLOY / "ray" / "cluster.yaml")[0]
    config["available_node_types"]["worker.gpu"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        validate_config(prepare_config(config))


def test_the_dockerfile_has_cpu_and_cuda_targets_with_a_non_root_user():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert {"cpu", "cuda"} <= set(stages)
    assert "download.pytorch.org/whl/cpu" in text and "download.pytorch.org/whl/cu" in text
    assert re.search(r"torch==\$\{TORCH_VERSION\}", text) and "ARG TORCH_VERSION=2.13.0" in text
    finals = text.split("AS cpu")[1], text.split("AS cuda")[1]
    assert all("USER foreseer" in stage for stage in finals)
    assert (DEPLOY / "entrypoint.sh").stat().st_mode & 0o111


@pytest.mark.parametrize(
    "path", [p for p in DEPLOY.rglob("*") if p.is_file()], ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_no_deploy_file_holds_a_password_literal(path):
    # Docs show the commands that create secrets with placeholders (<...>, $VAR), never a value.
    assert [m.group(0) for m in PASSWORD_LITERAL.finditer(path.read_text())] == []


def test_the_password_scan_finds_what_it_looks_for():
    for text in (
        "postgresql://me:s3cret@db/x",
        "password=hunter2",
        "--from-literal=password='hunter2'",
        "MLFLOW_AUTH_ADMIN_PASSWORD: hunter2",
    ):
        assert PASSWORD_LITERAL.search(text), text
    for text in (
        "postgresql+psycopg://foreseer@db/x",
        "PGPASSWORD_FILE=/run/secrets/x",
        "name: PGPASSWORD\n",
        "postgres_password:\n  file: ./secrets/postgres_password",
        "PGPASSWORD=$(cat /run/secrets/x)",
        "--from-literal=password='<password>'",
    ):
        assert not PASSWORD_LITERAL.search(text), text
