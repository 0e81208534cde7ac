"""deploy/kubernetes: every manifest is valid Kubernetes and has what an operator relies on.

Schemas come from `kubernetes-validate`, which ships them: no cluster, no network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests target, and a recent one.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
NOT_RESOURCES = {"kustomization.yaml"}
SECRET_EXAMPLE = "secret.example.yaml"
API_LABELS = {"app.kubernetes.io/name": "phone-auth", "app.kubernetes.io/component": "api"}


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name not in NOT_RESOURCES)


CRONJOBS = {
    "purge-verifications": "purge-cronjob.yaml",
    "sync-attempts": "sync-attempts-cronjob.yaml",
}


def _key(doc: dict[str, Any]) -> str:
    """A resource's kind; a CronJob's also names its command (`CronJob/sync-attempts`)."""
    if doc["kind"] == "CronJob":
        return f"CronJob/{doc['metadata']['labels']['app.kubernetes.io/component']}"
    return str(doc["kind"])


def _resources() -> dict[str, dict[str, Any]]:
    """Every resource by kind (one of each kind here, but the CronJobs: one per command)."""
    found: dict[str, dict[str, Any]] = {}
    for path in _manifest_files():
        for doc in _load(path):
            assert _key(doc) not in found, f"two {_key(doc)}s"
            found[_key(doc)] = doc
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    return _resources()


def _pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    if resource["kind"] == "CronJob":
        return resource["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def test_manifest_files_exist() -> None:
    names = {p.name for p in _manifest_files()}
    assert {
        "deployment.yaml",
        "service.yaml",
        "configmap.yaml",
        SECRET_EXAMPLE,
        "hpa.yaml",
        "pdb.yaml",
        "migration-job.yaml",
        *CRONJOBS.values(),
    } <= names


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    docs = _load(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} ({doc['kind']}) on Kubernetes {version}: {exc.message}")


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = _load(MANIFESTS / "kustomization.yaml")[0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    expected = {p.name for p in _manifest_files()} - {SECRET_EXAMPLE}
    assert set(listed) == expected
    assert kustomization["namespace"] == "phone-auth"
    assert [image["name"] for image in kustomization["images"]] == ["phone-auth"]


def test_secret_example_holds_only_placeholders(resources: dict[str, dict[str, Any]]) -> None:
    secret = resources["Secret"]
    assert "data" not in secret
    values = secret["stringData"]
    assert {"DATABASE_URL", "JWT_SECRET_KEY", "TWILIO_AUTH_TOKEN"} <= set(values)
    # The placeholder key is one production refuses, so the example can never run as is.
    assert values["JWT_SECRET_KEY"] == "change-me"
    assert all(value == "REPLACE_ME" for key, value in values.items() if key.startswith("TWILIO"))
    assert "REPLACE_ME" in values["DATABASE_URL"]


def test_configmap_holds_no_secret(resources: dict[str, dict[str, Any]]) -> None:
    data = resources["ConfigMap"]["data"]
    assert data["ENVIRONMENT"] == "production"
    assert data["LOG_FORMAT"] == "json"
    assert data["RATE_LIMIT_STORAGE_URL"].startswith("redis://")
    assert data["TRUSTED_PROXIES"]
    assert not {"DATABASE_URL", "JWT_SECRET_KEY", "TWILIO_AUTH_TOKEN"} & set(data)


def test_deployment(resources: dict[str, dict[str, Any]]) -> None:
    deployment = resources["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"] == API_LABELS
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = _pod_spec(deployment)
    (container,) = pod["containers"]
    assert container.get("args", ["serve"]) == ["serve"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    sources = [next(iter(source)) for source in container["envFrom"]]
    assert sources == ["configMapRef", "secretRef"]
    assert pod["topologySpreadConstraints"]
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == API_LABELS


def test_graceful_shutdown_fits_the_grace_period(resources: dict[str, dict[str, Any]]) -> None:
    pod = _pod_spec(resources["Deployment"])
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 1
    shutdown = int(resources["ConfigMap"]["data"]["GRACEFUL_SHUTDOWN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown


@pytest.mark.parametrize(
    "kind", ["Deployment", "Job", *(f"CronJob/{command}" for command in CRONJOBS)]
)
def test_pods_are_locked_down(resources: dict[str, dict[str, Any]], kind: str) -> None:
    pod = _pod_spec(resources[kind])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - the pod's mount point
        assert container["image"] == "phone-auth"
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_migration_job_runs_the_migrate_command(resources: dict[str, dict[str, Any]]) -> None:
    job = resources["Job"]
    pod = _pod_spec(job)
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app", "migrate"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    # Its pods must not be mistaken for API pods by the Service, PDB or spread.
    assert job["spec"]["template"]["metadata"]["labels"] != API_LABELS


@pytest.mark.parametrize("command", CRONJOBS)
def test_cronjobs_run_their_command_one_at_a_time(
    resources: dict[str, dict[str, Any]], command: str
) -> None:
    cronjob = resources[f"CronJob/{command}"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(cronjob["spec"]["schedule"].split()) == 5
    (container,) = _pod_spec(cronjob)["containers"]
    assert container["args"] == [command]
    assert _pod_spec(cronjob)["restartPolicy"] == "Never"
    # Not API pods: the Service, PDB and spread must not select them.
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"] != API_LABELS


def test_attempts_are_synced_every_five_minutes_as_the_api_runs(
    resources: dict[str, dict[str, Any]],
) -> None:
    """The sync runs with the API's image, settings and credentials (it calls Twilio
    and writes the database), and a run that overruns its slot is not doubled."""
    cronjob = resources["CronJob/sync-attempts"]
    assert cronjob["spec"]["schedule"] == "*/5 * * * *"
    (container,) = _pod_spec(cronjob)["containers"]
    (api,) = _pod_spec(resources["Deployment"])["containers"]
    assert container["envFrom"] == api["envFrom"]
    assert container["image"] == api["image"]
    # A run that fails waits for the next slot: the sync is idempotent.
    assert cronjob["spec"]["startingDeadlineSeconds"] < 300


def test_metrics_are_scraped_from_their_own_port_which_the_service_does_not_expose(
    resources: dict[str, dict[str, Any]],
) -> None:
    deployment = resources["Deployment"]
    (container,) = _pod_spec(deployment)["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    metrics_port = int(resources["ConfigMap"]["data"]["METRICS_PORT"])
    assert ports["metrics"] == metrics_port != ports["http"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    # The Ingress reaches pods only through the Service: the metrics port is not on it.
    service_targets = {port["targetPort"] for port in resources["Service"]["spec"]["ports"]}
    assert service_targets == {"http"}
    # The probes stay on the API's port, where /healthz and /readyz are served.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"


def test_kept_alive_connections_outlive_the_ingress_upstream_timeout(
    resources: dict[str, dict[str, Any]],
) -> None:
    """ingress-nginx keeps idle upstream connections for 60 s: the pod must not close
    them first, or a request sent on a closing connection fails with 502."""
    keepalive = int(resources["ConfigMap"]["data"]["HTTP_KEEPALIVE_TIMEOUT_SECONDS"])
    assert keepalive > 60


def test_service_hpa_and_pdb_select_the_api(resources: dict[str, dict[str, Any]]) -> None:
    service = resources["Service"]
    assert service["spec"]["selector"] == API_LABELS
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == resources["Deployment"]["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = resources["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == API_LABELS


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` would send, rendered offline."""
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: the kustomization is not built")
    done = subprocess.run(  # noqa: S603 - a fixed command on the project's own folder
        [*command, str(MANIFESTS)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kustomize_build_is_valid_kubernetes(built: list[dict[str, Any]], version: str) -> None:
    for doc in built:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"built {doc['kind']} on Kubernetes {version}: {exc.message}")


def test_kustomize_build_puts_everything_in_one_namespace_with_the_release_image(
    built: list[dict[str, Any]],
) -> None:
    kinds = sorted(doc["kind"] for doc in built)
    assert "Secret" not in kinds  # the example secret is applied by hand, never built
    assert {"Namespace", "Deployment", "Job", "CronJob", "Service", "ConfigMap"} <= set(kinds)
    for doc in built:
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "phone-auth", doc["kind"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "phone-auth", doc["kind"]
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            spec = _pod_spec(doc)
            images = {c["image"] for c in spec.get("initContainers", []) + spec["containers"]}
            assert images == {"registry.example.com/phone-auth:0.1.0"}, doc["kind"]
