"""deploy/k8s renders with the pinned kustomize and every object is valid and wired consistently.

Core kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields
fail). KEDA and Prometheus Operator kinds are validated against their published CRD schemas (fetched by
scripts/ops_tools.sh, unknown fields rejected as `kubectl --validate=strict` does); Strimzi's KafkaTopic has
no schema available offline and gets structural checks. On top: the wiring that matters (scaling ceiling =
partitions, KEDA and daemon agree on brokers/group/topic, PrometheusRule = the rules file and passes
promtool, dashboards ConfigMaps = the generated JSON, referenced Secrets/ConfigMaps exist).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("dev", "production")
K8S_VERSION = "1.31.0"
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}
# Secrets an overlay references but deliberately does not render (created out of band, see deploy/README.md).
CRD_DIR = ROOT / ".cache" / "crds"
# skyqa-archive-app: made by the CloudNativePG operator for the Cluster skyqa-archive; skyqa-web-auth: the web's
# operators and session key, made by the site (optional: without it the pages are view-only).
EXTERNAL_SECRETS = {"production": {"skyqa-kafka-credentials", "skyqa-kafka-cluster-ca-cert", "skyqa-archive-app",
                                   "skyqa-web-auth"},
                    "dev": {"skyqa-archive-app", "skyqa-web-auth"}}
DAEMON_IMAGE = "ghcr.io/skyqa/skyqa:0.1.0"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"


@pytest.fixture(scope="session")
def kustomize() -> str:
    """The pinned kustomize, installed by scripts/ops_tools.sh (idempotent) into .cache/bin."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "ops_tools.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def rendered(kustomize: str) -> dict[str, list[dict[str, Any]]]:
    docs = {}
    for overlay in OVERLAYS:
        out = subprocess.run(
            [kustomize, "build", str(DEPLOY / "k8s" / "overlays" / overlay)], check=True, capture_output=True, text=True
        )
        docs[overlay] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return docs


@pytest.fixture(scope="session")
def crd_schemas(kustomize: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD ops_tools.sh fetched."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: Any) -> Any:
    """Reject unknown fields, like the API server's strict field validation (unless the schema preserves them)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_literals(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def mounted_claim(deployment: dict[str, Any], path: str) -> tuple[str, bool]:
    """(PersistentVolumeClaim name, read-only) of what the Deployment's container mounts at `path`."""
    (mount,) = [m for m in container(deployment)["volumeMounts"] if m["mountPath"] == path.rstrip("/")]
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    claim = volume["persistentVolumeClaim"]
    return claim["claimName"], bool(mount.get("readOnly") or claim.get("readOnly"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(rendered: dict[str, list[dict[str, Any]]], overlay: str,
                                crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    import jsonschema

    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate missing: it belongs to the [dev] extra (kubernetes-validate==1.37.0)")
    kinds = set()
    for doc in rendered[overlay]:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
        kinds.add(doc["kind"])
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_KINDS:
            assert isinstance(doc.get("spec"), dict) and doc["spec"], f"{doc['kind']} without spec"
            if key in crd_schemas:
                jsonschema.Draft7Validator(crd_schemas[key]).validate(doc)
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") in {"skyqa", "kafka"}, doc["metadata"]
    expected = {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PersistentVolumeClaim",
                "PodDisruptionBudget", "ScaledObject", "KafkaTopic", "ServiceMonitor", "PrometheusRule"}
    assert expected <= kinds, expected - kinds


def test_crd_schemas_cover_keda_and_prometheus_operator(crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert CRD_KINDS - set(crd_schemas) == {("kafka.strimzi.io/v1beta2", "KafkaTopic")}
    import jsonschema

    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3, "triggers": []}}
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.Draft7Validator(crd_schemas[("keda.sh/v1alpha1", "ScaledObject")]).validate(bad)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_daemon_deployment(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    dep = one(docs, "Deployment", "skyqa")
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    assert c["image"] == DAEMON_IMAGE
    assert c["args"] == ["serve", "--source", "kafka", "--inference", "triton"]
    assert "replicas" not in dep["spec"], "KEDA owns the replica count"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "spool needs a writable /tmp"
    cm_name = volumes[mounts["/etc/skyqa"]]["configMap"]["name"]
    one(docs, "ConfigMap", cm_name)
    assert env_literals(c)["SKYQA_CONFIG"] == "/etc/skyqa/skyqa.yaml"
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert set(secret_env) == {"SKYQA_KAFKA__SASL_USERNAME", "SKYQA_KAFKA__SASL_PASSWORD"}
    if overlay == "production":
        ca = volumes[mounts["/etc/skyqa/kafka-ca"]]["secret"]
        assert ca["secretName"] == "skyqa-kafka-cluster-ca-cert"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_daemon_settings_load(rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The mounted YAML + the Deployment's env are accepted by skyqa.service.config.Settings (extra keys forbidden)."""
    from skyqa.service.config import Settings

    docs = rendered[overlay]
    dep = one(docs, "Deployment", "skyqa")
    cm_name = next(v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    cfg = tmp_path / "skyqa.yaml"
    cfg.write_text(one(docs, "ConfigMap", cm_name)["data"]["skyqa.yaml"])
    for key in [k for k in os.environ if k.startswith("SKYQA_")]:
        monkeypatch.delenv(key)
    for name, value in env_literals(container(dep)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SKYQA_CONFIG", str(cfg))
    s = Settings()
    assert s.inference.mode == "triton" and s.serve.source == "kafka" and s.serve.http_port == 8080
    assert s.inference.triton_url.split(":")[0] == "triton"
    assert str(s.fetch.spool_dir).startswith("/tmp/")
    assert mounted_claim(dep, str(s.models.repository))[0] == "skyqa-models"
    assert mounted_claim(dep, str(s.previews.location)) == ("skyqa-previews", False)
    if overlay == "production":
        assert s.kafka.security_protocol == "SASL_SSL"
        assert str(s.kafka.ssl_cafile).startswith("/etc/skyqa/kafka-ca/")
    # KEDA watches the same group and topic on the same brokers the daemon consumes from.
    meta = one(docs, "ScaledObject", "skyqa")["spec"]["triggers"][0]["metadata"]
    assert meta["bootstrapServers"] == s.kafka.bootstrap_servers
    assert meta["consumerGroup"] == s.kafka.group_id and meta["topic"] == s.kafka.events_topic
    topics = {t["spec"]["topicName"] for t in objects(docs, "KafkaTopic")}
    assert topics == {s.kafka.events_topic, s.kafka.verdicts_topic, s.kafka.deadletter_topic}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaling_follows_partitions(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    so = one(docs, "ScaledObject", "skyqa")
    events = next(t for t in objects(docs, "KafkaTopic") if t["spec"]["topicName"] == "skyqa.exposures")
    assert so["spec"]["maxReplicaCount"] == events["spec"]["partitions"]
    assert so["spec"]["scaleTargetRef"]["name"] == "skyqa"
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka" and int(trigger["metadata"]["lagThreshold"]) > 0
    for topic in objects(docs, "KafkaTopic"):
        assert topic["metadata"]["namespace"] == "kafka" and topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert int(topic["spec"]["config"]["retention.ms"]) > 0 and topic["spec"]["partitions"] >= 1
    if overlay == "production":
        assert so["spec"]["maxReplicaCount"] == 6
        auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password", "ca"}
        assert trigger["metadata"]["tls"] == "enable" and trigger["metadata"]["sasl"] == "scram_sha512"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_deployment(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    dep = one(docs, "Deployment", "triton")
    c = container(dep)
    assert c["image"] == TRITON_IMAGE
    assert c["args"] == ["tritonserver", "--model-repository=/models", "--model-control-mode=poll"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    pvc = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
    one(docs, "PersistentVolumeClaim", pvc["persistentVolumeClaim"]["claimName"])
    svc = one(docs, "Service", "triton")
    assert {p["port"] for p in svc["spec"]["ports"]} == {8000, 8001, 8002}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shared_model_and_preview_volumes(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    """A version the web publishes reaches the daemons (models.repository) and Triton (--model-repository) on one
    volume, and the previews the daemons write are the ones the web reads: same claims, right access."""
    docs = rendered[overlay]
    daemon, web, triton = (one(docs, "Deployment", n) for n in ("skyqa", "skyqa-web", "triton"))
    daemon_env, web_env = env_literals(container(daemon)), env_literals(container(web))
    models = {"daemon": mounted_claim(daemon, daemon_env["SKYQA_MODELS__REPOSITORY"]),
              "web": mounted_claim(web, web_env["SKYQA_MODELS__REPOSITORY"]),
              "triton": mounted_claim(triton, container(triton)["args"][1].removeprefix("--model-repository="))}
    assert models == {"daemon": ("skyqa-models", True), "web": ("skyqa-models", False),
                      "triton": ("skyqa-models", True)}, "only the web writes the model repository"
    previews = {"daemon": mounted_claim(daemon, daemon_env["SKYQA_PREVIEWS__LOCATION"]),
                "web": mounted_claim(web, web_env["SKYQA_PREVIEWS__LOCATION"])}
    assert previews == {"daemon": ("skyqa-previews", False), "web": ("skyqa-previews", True)}
    for claim in ("skyqa-models", "skyqa-previews"):  # mounted by pods on several nodes
        assert one(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment, env in ((daemon, daemon_env), (web, web_env)):  # whichever starts first seeds the volume
        (seed,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert seed["command"][:2] == ["cp", "-rn"] and seed["command"][-1].rstrip("/") == env["SKYQA_MODELS__REPOSITORY"]
        assert seed["image"] == container(deployment)["image"]
        (mount,) = seed["volumeMounts"]
        assert mount["mountPath"].rstrip("/") == env["SKYQA_MODELS__REPOSITORY"] and not mount.get("readOnly")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_monitors_select_services(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in objects(docs, "Deployment")}
    for svc in objects(docs, "Service"):
        sel = svc["spec"]["selector"]
        assert any(sel.items() <= labels.items() for labels in pods.values()), f"Service {svc['metadata']['name']}"
    for sm in objects(docs, "ServiceMonitor"):
        match = sm["spec"]["selector"]["matchLabels"]
        svcs = [s for s in objects(docs, "Service") if match.items() <= s["metadata"]["labels"].items()]
        assert len(svcs) == 1, sm["metadata"]["name"]
        ports = {p["name"] for p in svcs[0]["spec"]["ports"]}
        assert all(e["port"] in ports for e in sm["spec"]["endpoints"])
        # The alert rules select job="skyqa" / job="triton": the job name comes from this label.
        assert svcs[0]["metadata"]["labels"][sm["spec"]["jobLabel"]] in {"skyqa", "triton", "skyqa-archive"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_referenced_secrets_and_configmaps_exist(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    have = {("Secret", d["metadata"]["name"]) for d in objects(docs, "Secret")}
    have |= {("ConfigMap", d["metadata"]["name"]) for d in objects(docs, "ConfigMap")}
    have |= {("Secret", name) for name in EXTERNAL_SECRETS[overlay]}
    text = json.dumps(docs)
    wanted: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                wanted.add(("Secret", node["secretKeyRef"]["name"]))
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                wanted.add(("Secret", node["secret"]["secretName"]))
            if "configMap" in node and isinstance(node["configMap"], dict):
                wanted.add(("ConfigMap", node["configMap"]["name"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(docs)
    for auth in objects(docs, "TriggerAuthentication"):
        wanted |= {("Secret", r["name"]) for r in auth["spec"]["secretTargetRef"]}
    assert wanted <= have, wanted - have
    assert "not-a-secret" not in text or overlay == "dev"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_is_the_rules_file(rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path) -> None:
    rule = one(rendered[overlay], "PrometheusRule", "skyqa")
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "skyqa-rules.yaml").read_text())
    if shutil.which("promtool"):
        groups = tmp_path / "groups.yaml"
        groups.write_text(yaml.safe_dump(rule["spec"]))
        subprocess.run(["promtool", "check", "rules", str(groups)], check=True, capture_output=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dashboards_configmaps(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    cms = [d for d in objects(rendered[overlay], "ConfigMap") if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    files = {p.name: p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert {k: v for cm in cms for k, v in cm["data"].items()} == files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_archive_writer_api_and_database(rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer and API run the right commands on the CloudNativePG Cluster's app credentials; their env + the
    mounted YAML load as Settings, with an SQLAlchemy PostgreSQL URL."""
    docs = rendered[overlay]
    writer_dep = one(docs, "Deployment", "skyqa-archive-writer")
    writer, api = container(writer_dep), container(one(docs, "Deployment", "skyqa-api"))
    config_map = {v["name"]: v for v in writer_dep["spec"]["template"]["spec"]["volumes"]}["config"]["configMap"]["name"]
    assert writer["args"] == ["archive", "consume"] and api["args"][:1] == ["api"]
    cluster = one(docs, "Cluster", "skyqa-archive")
    assert cluster["spec"]["instances"] == (3 if overlay == "production" else 1)
    for c in (writer, api):
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        assert f"{cluster['metadata']['name']}-app" in refs
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        url = env_literals(c)["SKYQA_ARCHIVE__URL"]
        assert url.startswith("postgresql+psycopg://") and "@skyqa-archive-rw:5432/" in url
        from skyqa.service.config import Settings

        config = tmp_path / "skyqa.yaml"
        config.write_text(one(docs, "ConfigMap", config_map)["data"]["skyqa.yaml"])
        monkeypatch.setenv("SKYQA_CONFIG", str(config))
        monkeypatch.setenv("SKYQA_ARCHIVE__URL", url.replace("$(ARCHIVE_DB_USER)", "app").replace("$(ARCHIVE_DB_PASSWORD)", "pw"))
        assert Settings().archive.url.startswith("postgresql+psycopg://app:pw@")
    assert {p["containerPort"] for p in writer["ports"]} == {8081}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_deployment_service_and_ingress(rendered: dict[str, list[dict[str, Any]]], overlay: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`skyqa web` on the archive's database, with a writable model repository to publish into, its operators from
    an optional Secret, and an Ingress to its Service; its env + the mounted YAML load as Settings."""
    docs = rendered[overlay]
    deployment = one(docs, "Deployment", "skyqa-web")
    web = container(deployment)
    assert web["args"][:1] == ["web"] and {p["containerPort"] for p in web["ports"]} == {8000}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in web["env"] if "valueFrom" in e}
    assert refs["SKYQA_WEB__USERS"]["name"] == "skyqa-web-auth" and refs["SKYQA_WEB__USERS"]["optional"] is True
    env = env_literals(web)
    mounts = {m["mountPath"]: m for m in web["volumeMounts"]}
    assert not mounts[env["SKYQA_MODELS__REPOSITORY"]].get("readOnly")  # publishing writes a version there
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert {one(docs, "PersistentVolumeClaim", c)["spec"]["accessModes"][0] for c in claims.values()} == {"ReadWriteMany"}
    ingress = one(docs, "Ingress", "skyqa-web")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = one(docs, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    from skyqa.service.config import Settings

    config = tmp_path / "skyqa.yaml"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config.write_text(one(docs, "ConfigMap", volumes["config"]["configMap"]["name"])["data"]["skyqa.yaml"])
    monkeypatch.setenv("SKYQA_CONFIG", str(config))
    for name, value in env.items():
        if name.startswith("SKYQA_") and name != "SKYQA_CONFIG":
            monkeypatch.setenv(name, value.replace("$(ARCHIVE_DB_USER)", "app").replace("$(ARCHIVE_DB_PASSWORD)", "pw"))
    monkeypatch.setenv("SKYQA_WEB__USERS", '{"ana": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}')
    settings = Settings()
    assert settings.web.https_only and list(settings.web.users) == ["ana"]
    assert str(settings.models.repository) == env["SKYQA_MODELS__REPOSITORY"]
