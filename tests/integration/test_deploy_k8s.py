"""deploy/k8s: both overlays render with kustomize, every object is valid for Kubernetes
(the API's own schemas, strict: an unknown or misspelt field fails), and what a cluster
cannot check by itself holds: the pods run as the image's non-root user on a read-only
root, get settings socius accepts, are probed on the right paths, and the objects point
at each other (Service, Ingress, HPA, PDB selectors).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy_support import DEPLOY, missing, which
from socius.realtime.gateway import Limits
from socius.settings import Settings, load_settings

OVERLAYS = ("embedded", "clustered")
#: The oldest Kubernetes the manifests are written for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

Doc = dict[str, Any]


def render(overlay: str) -> list[Doc]:
    return render_path(DEPLOY / "k8s" / "overlays" / overlay)


def render_path(path: Path) -> list[Doc]:
    kubectl, kustomize = which("kubectl"), which("kustomize")
    if kubectl:
        command = [kubectl, "kustomize", str(path)]
    elif kustomize:
        command = [kustomize, "build", str(path)]
    else:
        missing("kubectl (with its built-in kustomize) or kustomize")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def only(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(object, pod template) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield doc, doc["spec"]["template"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def image_user() -> int:
    """The numeric user the image runs as (the Dockerfile's last USER)."""
    users = re.findall(r"^USER\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"the image's USER must be numeric, not {uid}"
    return int(uid)


def image_environment() -> dict[str, str]:
    """The SOCIUS_* variables the Dockerfile's ENV lines set."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.*)$", text, re.MULTILINE):
        found |= dict(re.findall(r"(SOCIUS_\w+)=(\S+)", line))
    return found


def pod_environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    """What a container's process finds in its environment: the image's ENV, then its
    envFrom ConfigMaps and Secrets, then its env entries."""
    environ = image_environment()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environ |= only(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:  # absent when made outside the manifests
            name = source["secretRef"]["name"]
            for secret in (
                d for d in docs if (d["kind"], d["metadata"]["name"]) == ("Secret", name)
            ):
                environ |= secret["stringData"]
    for entry in container.get("env", []):
        environ[entry["name"]] = entry["value"]
    return environ


def settings_of(docs: list[Doc], container: Doc) -> Settings:
    return load_settings(pod_environment(docs, container))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_kubernetes(rendered, overlay):
    docs = rendered[overlay]
    assert docs
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay} {doc['kind']}/{doc['metadata']['name']} ({version}): {exc}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_locked_down_as_the_images_user(rendered, overlay):
    uid = image_user()
    for workload, template in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        pod = template["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] == uid, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # Else a Service named socius puts SOCIUS_PORT=tcp://... into the environment,
        # which socius refuses at start.
        assert pod["enableServiceLinks"] is False, name
        assert pod["automountServiceAccountToken"] is False, name
        tmp = [v["name"] for v in pod["volumes"] if "emptyDir" in v]
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security.get("runAsUser", uid) == uid, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp  # noqa: S108, f"{name}: /tmp must be a writable emptyDir"
            for need in ("requests", "limits"):
                assert set(container["resources"][need]) >= {"cpu", "memory"}, (name, need)
            assert container["image"].startswith("socius:"), container["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_get_settings_socius_accepts(rendered, overlay):
    docs = rendered[overlay]
    for workload, template in workloads(docs):
        for container in template["spec"]["containers"]:
            # The exact check socius makes at start: unknown SOCIUS_* names and bad
            # values are refused (SettingsError).
            settings = settings_of(docs, container)
            assert settings.host == "0.0.0.0", workload["metadata"]["name"]  # noqa: S104
            # One process per pod: Prometheus scrapes one registry per pod.
            assert settings.workers == 1


def test_the_server_is_probed_and_stops_gracefully(rendered):
    for overlay in OVERLAYS:
        server = only(rendered[overlay], "Deployment", "socius")
        pod = server["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["serve"]
        port = settings_of(rendered[overlay], container).port
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}
        probes = {
            kind: container[f"{kind}Probe"]["httpGet"]
            for kind in ("startup", "liveness", "readiness")
        }
        assert {kind: probe["path"] for kind, probe in probes.items()} == {
            "startup": "/healthz",
            "liveness": "/healthz",
            "readiness": "/readyz",
        }
        assert all(ports[probe["port"]] == port for probe in probes.values())
        # /readyz gives each dependency 2 s: the probe must wait longer than that.
        assert container["readinessProbe"]["timeoutSeconds"] > 2
        # The pause before SIGTERM, then Granian's drain, fit in the grace period.
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] >= pause + 20


def test_embedded_is_one_pod_with_its_database_on_a_volume(rendered):
    docs = rendered["embedded"]
    server = only(docs, "Deployment", "socius")
    assert server["spec"]["replicas"] == 1
    # Never two pods on one SQLite file and one ReadWriteOnce volume.
    assert server["spec"]["strategy"]["type"] == "Recreate"
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = settings_of(docs, container)
    assert settings.is_embedded
    assert settings.auto_migrate
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(settings.data_dir) in claims, (settings.data_dir, mounts)
    claim = only(docs, "PersistentVolumeClaim", claims[mounts[settings.data_dir]])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The volume belongs to the image's user (fsGroup), who runs the server.
    assert pod["securityContext"]["fsGroup"] == image_user()
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}


def test_clustered_scales_out_behind_probes_and_a_budget(rendered):
    docs = rendered["clustered"]
    server = only(docs, "Deployment", "socius")
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    assert selects(server["spec"]["selector"]["matchLabels"], pod_labels)
    assert "replicas" not in server["spec"], "the HorizontalPodAutoscaler owns the count"
    assert server["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = server["spec"]["template"]["spec"]["containers"]
    settings = settings_of(docs, container)
    assert not settings.is_embedded
    assert settings.database_url.startswith("postgresql://")
    assert settings.redis_url
    assert settings.nats_url
    assert not settings.auto_migrate, "the migration Job migrates, once"
    # Several pods: each process takes its node id from Redis (bootstrap) unless set.
    assert settings.node_id == -1

    hpa = only(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "socius")
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container["resources"]["requests"], "CPU utilisation is of the request"

    others = [
        template["metadata"]["labels"]
        for workload, template in workloads(docs)
        if workload["metadata"]["name"] != "socius"
    ]
    assert len(others) == 2  # the worker and the migration
    for kind in ("PodDisruptionBudget", "Service"):
        obj = only(docs, kind)
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selects(selector, pod_labels), kind
        assert not any(selects(selector, labels) for labels in others), kind
    assert only(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_clustered_runs_a_worker_and_a_migration_job(rendered):
    docs = rendered["clustered"]
    worker = only(docs, "Deployment", "socius-worker")
    assert worker["spec"]["replicas"] == 1
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    assert not settings_of(docs, container).is_embedded

    job = only(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]
    assert not settings_of(docs, container).is_embedded

    # docs/deploy.md applies the configuration and the Job first, by label:
    # kubectl apply -k ... -l 'app.kubernetes.io/component in (config,migration)'
    first = {
        (d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else
         d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        in {"config", "migration"}
    }  # fmt: skip
    assert first == {
        ("ConfigMap", "socius-config"),
        ("Secret", "socius-secrets"),
        ("Job", "socius-migrate"),
    }
    deploy_doc = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    assert "-l 'app.kubernetes.io/component in (config,migration)'" in deploy_doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_reaches_the_service_and_keeps_websockets_open(rendered, overlay):
    docs = rendered[overlay]
    ingress = only(docs, "Ingress")
    service = only(docs, "Service")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in service_ports
    server = only(docs, "Deployment", "socius")
    container_ports = {
        p["name"] for c in server["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }
    assert all(p["targetPort"] in container_ports for p in service_ports.values())

    annotations = ingress["metadata"]["annotations"]
    # A socket quiet for less than socius's own idle timeout must not be cut by the proxy.
    idle = Limits().idle_timeout
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > idle, key
    assert annotations["nginx.ingress.kubernetes.io/proxy-http-version"] == "1.1"
    assert ingress["spec"]["ingressClassName"] == "nginx"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_carries_the_app_labels(rendered, overlay):
    for doc in rendered[overlay]:
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "socius", doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/component"), doc["metadata"]["name"]


def test_the_overlay_of_the_docs_renders_as_it_says(tmp_path):
    """docs/deploy.md's own-overlay example, on top of the clustered overlay."""
    text = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    (example,) = re.findall(r"```yaml\n# my-socius/kustomization.yaml\n(.*?)```", text, re.DOTALL)
    mine = tmp_path / "my-socius"
    mine.mkdir()
    clustered = DEPLOY / "k8s" / "overlays" / "clustered"
    example = example.replace("../deploy/k8s/overlays/clustered", os.path.relpath(clustered, mine))
    (mine / "kustomization.yaml").write_text(example)
    docs = render_path(mine)

    assert not [d for d in docs if d["kind"] == "Secret"], "the placeholder Secret is dropped"
    assert {d["metadata"].get("namespace") for d in docs} == {"socius"}
    server = only(docs, "Deployment", "socius")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/socius:0.1.0"
    config = pod_environment(docs, container)
    assert config["SOCIUS_PUBLIC_URL"] == "https://chat.example.com"
    assert config["SOCIUS_AUTO_MIGRATE"] == "false"  # the overlay's merge is kept
    ingress = only(docs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "chat.example.com"
    assert ingress["spec"]["tls"][0]["hosts"] == ["chat.example.com"]
