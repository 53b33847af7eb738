"""deploy/k8s: every overlay renders with kustomize, passes ``kubernetes-validate --strict``, and
keeps the invariants a safe rollout depends on (drain fits the grace period, probes, pinned
images, resources, non-root, hashed config, the KEDA trigger on the fleet's desired count)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.devstack.services import TOOLS_DIR
from shared.settings import ControlPlaneSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZE_VERSION = "v5.8.1"  # scripts/bootstrap installs this one
KUSTOMIZE = TOOLS_DIR / f"kustomize-{KUSTOMIZE_VERSION}"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

Doc = dict[str, Any]


def render(k8s: Path, overlay: str) -> str:
    if not KUSTOMIZE.exists():
        pytest.fail(f"{KUSTOMIZE} is missing: run scripts/bootstrap")
    out = subprocess.run(
        [str(KUSTOMIZE), "build", str(k8s / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with prod's secret files made from their examples, as an operator
    would."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env", "shared-secrets.env"))
    prod = tree / "overlays" / "prod"
    for name in ("secrets.env", "shared-secrets.env"):
        shutil.copy(prod / f"{name}.example", prod / name)
    return tree


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, k8s_tree: Path) -> Iterator[tuple[str, str]]:
    overlay: str = request.param
    yield overlay, render(k8s_tree, overlay)


def docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def one(objects: list[Doc], kind: str, name_prefix: str) -> Doc:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)
    ]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


def containers(deployment: Doc) -> list[Doc]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def config_value(objects: list[Doc], key: str) -> str:
    return str(one(objects, "ConfigMap", "podium-config")["data"][key])


def validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [str(cli), "--strict", "--quiet", "-k", version, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_overlay_passes_strict_schema_validation(
    rendered: tuple[str, str], version: str, tmp_path: Path
) -> None:
    overlay, text = rendered
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(text)
    result = validate(path, version)
    assert result.returncode == 0, result.stdout + result.stderr
    # KEDA's kinds have no schema in the validator: they are checked field by field below
    skipped = {line for line in result.stdout.splitlines() if "Couldn't find schema" in line}
    assert all("keda.sh" in line for line in skipped), skipped


def test_the_validator_rejects_what_a_cluster_would(k8s_tree: Path, tmp_path: Path) -> None:
    """Guards the test above: strict validation does fail on an unknown field."""
    objects = docs(render(k8s_tree, "dev"))
    worker = one(objects, "Deployment", "podium-worker")
    worker["spec"]["template"]["spec"]["terminationGracePeriod"] = 60  # misspelt
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(worker))
    assert validate(path, "1.37.0").returncode != 0


def test_worker_grace_period_covers_the_drain(rendered: tuple[str, str]) -> None:
    overlay, text = rendered
    objects = docs(text)
    worker = one(objects, "Deployment", "podium-worker")
    drain = int(config_value(objects, "PODIUM_DRAIN_TIMEOUT_SECONDS"))
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # the drain, plus time to close the job processes and Piper after the last session
    assert grace >= drain + 30, (overlay, grace, drain)
    # a rollout brings new workers up before any old one is asked to drain
    rolling = worker["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


def test_probes_are_on_the_routes_that_mean_alive_and_ready(rendered: tuple[str, str]) -> None:
    _, text = rendered
    objects = docs(text)
    (cp,) = containers(one(objects, "Deployment", "podium-control-plane"))
    assert cp["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert cp["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert cp["startupProbe"]["httpGet"]["path"] == "/healthz"
    (worker,) = containers(one(objects, "Deployment", "podium-worker"))
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    # liveness on the framework's health route (200 through a drain); readiness on ours
    # (503 while draining), on the ports the worker is configured to serve them
    assert worker["livenessProbe"]["httpGet"] == {"path": "/", "port": "health"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert ports["health"] == int(config_value(objects, "PODIUM_HTTP_PORT"))
    assert ports["ops"] == int(config_value(objects, "PODIUM_OPS_PORT"))
    assert config_value(objects, "PODIUM_HTTP_HOST") == "0.0.0.0"


def test_images_are_pinned_and_resources_set(rendered: tuple[str, str]) -> None:
    _, text = rendered
    for deployment in (o for o in docs(text) if o["kind"] == "Deployment"):
        for container in containers(deployment):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, image
            assert tag not in ("", "latest"), image
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_pods_run_as_non_root_with_nothing_extra(rendered: tuple[str, str]) -> None:
    _, text = rendered
    for deployment in (o for o in docs(text) if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        # only the control plane holds a token, to patch worker pods' deletion costs
        is_control_plane = deployment["metadata"]["name"] == "podium-control-plane"
        assert spec["automountServiceAccountToken"] is is_control_plane
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]


def test_config_and_secrets_are_generated_so_changes_roll_pods(
    rendered: tuple[str, str],
) -> None:
    _, text = rendered
    objects = docs(text)
    config = one(objects, "ConfigMap", "podium-config")["metadata"]["name"]
    secret = one(objects, "Secret", "podium-secrets")["metadata"]["name"]
    shared = one(objects, "Secret", "podium-shared-secrets")["metadata"]["name"]
    # kustomize appended a content hash to the names
    assert config != "podium-config" and secret != "podium-secrets"
    assert shared != "podium-shared-secrets"
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        for container in containers(deployment):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config}} in sources
            assert {"secretRef": {"name": shared}} in sources
    control_plane = one(objects, "Deployment", "podium-control-plane")
    assert {"secretRef": {"name": secret}} in containers(control_plane)[0]["envFrom"]
    keda_auth = one(objects, "TriggerAuthentication", "podium-fleet-auth")
    assert keda_auth["spec"]["secretTargetRef"] == [
        {"parameter": "token", "name": secret, "key": "PODIUM_OPS_TOKEN"}
    ]


def test_settings_in_the_config_are_ones_the_services_accept(
    rendered: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every PODIUM_ key is a real setting and its value validates (a typo would be ignored)."""
    overlay, text = rendered
    objects = docs(text)
    data = dict(one(objects, "ConfigMap", "podium-config")["data"])
    known = set(ControlPlaneSettings.model_fields) | set(WorkerSettings.model_fields)
    unknown = [k for k in data if k.startswith("PODIUM_") and k[7:].lower() not in known]
    assert not unknown, unknown
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    # the placeholders of the example secrets, long enough for prod's checks
    for key in ("PODIUM_LIVEKIT_API_SECRET", "PODIUM_INTERNAL_SECRET", "PODIUM_OPS_TOKEN"):
        monkeypatch.setenv(key, f"{overlay}-{key}-0123456789abcdef0123456789abcdef")
    ControlPlaneSettings()
    worker = WorkerSettings()
    assert worker.ops_port is not None


def test_keda_scales_workers_on_the_fleets_desired_count(rendered: tuple[str, str]) -> None:
    overlay, text = rendered
    objects = docs(text)
    namespace = "podium-dev" if overlay == "dev" else "podium"
    scaled = one(objects, "ScaledObject", "podium-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["namespace"] == namespace
    assert scaled["spec"]["scaleTargetRef"]["name"] == "podium-worker"
    assert one(objects, "Deployment", "podium-worker")["metadata"]["name"] == "podium-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    # KEDA's operator resolves the URL from its own namespace
    assert meta["url"] == (
        f"http://podium-control-plane.{namespace}.svc.cluster.local:8000/v1/fleet"
    )
    assert meta["valueLocation"] == "desired_workers"
    assert meta["targetValue"] == "1"  # one replica per desired worker
    assert meta["authMode"] == "bearer"
    assert trigger["authenticationRef"]["name"] == "podium-fleet-auth"
    # the scaler's bounds match the control plane's policy bounds
    assert scaled["spec"]["minReplicaCount"] == int(
        config_value(objects, "PODIUM_FLEET_MIN_WORKERS")
    )
    assert scaled["spec"]["maxReplicaCount"] == int(
        config_value(objects, "PODIUM_FLEET_MAX_WORKERS")
    )
    # no replicas on the worker Deployment: an apply would fight the autoscaler
    assert "replicas" not in one(objects, "Deployment", "podium-worker")["spec"]


def test_the_control_plane_may_patch_pods_and_nothing_else(rendered: tuple[str, str]) -> None:
    """Scale-down picks idle workers: the control plane's account can set pods' deletion costs
    (and do nothing more); the setting that turns the updater on is in the config."""
    _, text = rendered
    objects = docs(text)
    account = one(objects, "ServiceAccount", "podium-control-plane")
    spec = one(objects, "Deployment", "podium-control-plane")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert (
        "serviceAccountName"
        not in (one(objects, "Deployment", "podium-worker")["spec"]["template"]["spec"])
    )
    role = one(objects, "Role", "podium-pod-deletion-cost")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    binding = one(objects, "RoleBinding", "podium-pod-deletion-cost")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert config_value(objects, "PODIUM_FLEET_DELETION_COST") == "true"


def test_disruption_budgets_and_network_policies_cover_both_services(
    rendered: tuple[str, str],
) -> None:
    _, text = rendered
    objects = docs(text)
    for name in ("podium-control-plane", "podium-worker"):
        pdb = one(objects, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        policy = one(objects, "NetworkPolicy", name)
        assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    deny = one(objects, "NetworkPolicy", "podium-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _reaches(policy: Doc, address: str, port: int) -> bool:
    """Whether the policy's egress lets a pod connect to ``address`` on TCP ``port``."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        if not any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"]):
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block is None or ip.version != ipaddress.ip_network(block["cidr"]).version:
                continue
            inside = ip in ipaddress.ip_network(block["cidr"])
            excepted = any(
                ip in ipaddress.ip_network(cidr)
                for cidr in block.get("except", [])
                if ipaddress.ip_network(cidr).version == ip.version
            )
            if inside and not excepted:
                return True
    return False


def test_the_control_plane_reaches_public_https_and_its_services_but_no_metadata(
    rendered: tuple[str, str],
) -> None:
    """Webhooks and deck conversion run in the control plane: what it can reach is what a
    hostile endpoint or deck could make it reach."""
    _, text = rendered
    policy = one(docs(text), "NetworkPolicy", "podium-control-plane")
    assert _reaches(policy, "93.184.215.14", 443) and _reaches(policy, "2606:4700::1111", 443)
    for port in (5432, 6379, 7880):
        assert _reaches(policy, "10.0.3.7", port)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "fe80::1"):
        assert not any(_reaches(policy, address, port) for port in (80, 443, 5432, 6379, 7880))
    for address in ("10.0.3.7", "172.20.0.5", "192.168.1.10", "100.64.0.1", "fd12::1"):
        assert not _reaches(policy, address, 443), address
    assert not any(_reaches(policy, "93.184.215.14", port) for port in (22, 80, 8080, 9200))


def test_prod_secrets_never_come_from_the_repository() -> None:
    prod = K8S / "overlays" / "prod"
    assert not (prod / "secrets.env").exists() or "secrets.env" in (prod / ".gitignore").read_text()
    tracked = subprocess.run(
        ["git", "ls-files", str(prod)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if p.endswith("/secrets.env")]


def _secret_keys(objects: list[Doc], container: Doc) -> set[str]:
    """Every secret key a container's environment holds, from envFrom and from env."""
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    keys: set[str] = set()
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            found = secrets[source["secretRef"]["name"]]
            keys |= set(found.get("data", {})) | set(found.get("stringData", {}))
    for var in container.get("env", []):
        if "secretKeyRef" in var.get("valueFrom", {}):
            keys.add(var["name"])
    return keys


def test_workers_get_only_the_secrets_they_use(rendered: tuple[str, str]) -> None:
    """A compromised worker pod must not hold what reads or signs for every tenant: the
    database and Redis, the ops token, the session-credential and asset-URL keys."""
    _, text = rendered
    objects = docs(text)
    (worker,) = containers(one(objects, "Deployment", "podium-worker"))
    held = _secret_keys(objects, worker)
    assert held == {"PODIUM_LIVEKIT_API_KEY", "PODIUM_LIVEKIT_API_SECRET", "PODIUM_FLEET_KEYS"}
    config = one(objects, "ConfigMap", "podium-config")["data"]
    plain = {var["name"] for var in worker.get("env", [])}
    forbidden = {
        "PODIUM_DATABASE_URL",
        "PODIUM_REDIS_URL",
        "PODIUM_OPS_TOKEN",
        "PODIUM_INTERNAL_SECRET",
        "PODIUM_SESSION_CREDENTIAL_KEYS",
        "PODIUM_ASSET_URL_KEYS",
    }
    assert not forbidden & (held | set(config) | plain)
    # the control plane holds what it signs and verifies with
    (api,) = containers(one(objects, "Deployment", "podium-control-plane"))
    assert {"PODIUM_DATABASE_URL", "PODIUM_OPS_TOKEN", "PODIUM_FLEET_KEYS"} <= _secret_keys(
        objects, api
    )


def test_the_worker_settings_hold_no_control_plane_secret() -> None:
    """What a worker never uses, it cannot be given: its settings have no field for it."""
    fields = set(WorkerSettings.model_fields)
    for name in (
        "database_url",
        "redis_url",
        "ops_token",
        "session_credential_keys",
        "asset_url_keys",
    ):
        assert name in ControlPlaneSettings.model_fields
        assert name not in fields
    assert "fleet_keys" in fields


def test_control_plane_metrics_are_scraped_on_their_own_port_by_prometheus_only(
    rendered: tuple[str, str],
) -> None:
    _, text = rendered
    objects = docs(text)
    deployment = one(objects, "Deployment", "podium-control-plane")
    (cp,) = containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in cp["ports"]}
    metrics_port = int(config_value(objects, "PODIUM_METRICS_PORT"))
    assert ports["metrics"] == metrics_port != ports["http"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == metrics_port
    ingress = one(objects, "NetworkPolicy", "podium-control-plane")["spec"]["ingress"]
    for rule in ingress:
        if any(p["port"] == metrics_port for p in rule["ports"]):
            monitoring = {"kubernetes.io/metadata.name": "monitoring"}
            assert rule["from"] == [{"namespaceSelector": {"matchLabels": monitoring}}]
