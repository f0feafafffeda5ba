"""deploy/: what can be checked without a Docker engine or a cluster.

- Dockerfile: python:3.11-slim, a non-root USER, EXPOSE, HEALTHCHECK on /health, `facerec serve
  --host 0.0.0.0`;
- compose.yaml: parses, and references only services and volumes it defines; nginx.conf proxies
  to exactly its API replicas, without stickiness;
- k8s/: every manifest validates (strict) against the Kubernetes JSON schema bundled in the
  kubernetes-validate package (offline), with the probes, resources and autoscaling wanted.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
K8S_VERSION = "1.30.0"


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final file, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_builds_on_python_311_slim() -> None:
    bases = [args.split()[0] for word, args in dockerfile_instructions() if word == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # The user is created in the image before being switched to.
    runs = " ".join(args for word, args in final_stage() if word == "RUN")
    assert re.search(rf"useradd\b.*--uid {user}\b", runs) or f"useradd {user}" in runs


def test_dockerfile_exposes_the_port_it_serves_and_checks_health() -> None:
    stage = final_stage()
    exposed = [args for word, args in stage if word == "EXPOSE"]
    assert exposed == ["8000"]
    healthchecks = [args for word, args in stage if word == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "CMD" in healthchecks[0] and "http://127.0.0.1:8000/health" in healthchecks[0]


def test_dockerfile_installs_the_package_and_serves_beyond_loopback() -> None:
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs)
    commands = [args for word, args in final_stage() if word == "CMD"]
    assert len(commands) == 1
    command = yaml.safe_load(commands[0])  # the JSON (exec) form
    assert command == ["facerec", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_dockerfile_copies_only_what_exists() -> None:
    for word, args in dockerfile_instructions():
        if word == "COPY" and "--from" not in args:
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), source


# --- compose and nginx ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_references_only_defined_services_and_volumes() -> None:
    document = compose()
    services: dict[str, dict[str, Any]] = document["services"]
    volumes = set(document.get("volumes") or {})
    used_volumes: set[str] = set()
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on") or {}
        assert set(depends) <= set(services), f"{name} depends on {set(depends) - set(services)}"
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount["source"]
            if not source.startswith((".", "/")):
                used_volumes.add(source)
            else:
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        if "build" in service:
            build = service["build"]
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        for env_file in [service["env_file"]] if "env_file" in service else []:
            assert (DEPLOY / f"{env_file}.example").is_file(), env_file
    assert used_volumes <= volumes, used_volumes - volumes
    assert volumes <= used_volumes, f"unused volumes {volumes - used_volumes}"


def test_compose_topology() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["redis"]["image"].startswith("redis:")
    replicas = [name for name, service in services.items() if "build" in service]
    assert replicas == ["api-1", "api-2"]
    for name in replicas:
        env = services[name]["environment"]
        assert "@postgres:5432/" in env["FACEREC_DATABASE_URL"]
        assert env["FACEREC_REDIS_URL"] == "redis://redis:6379/0"
        assert "FACEREC_AUTH__PEPPER" in env
        depends = services[name]["depends_on"]
        assert depends == {name: {"condition": "service_healthy"} for name in ("postgres", "redis")}
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert set(proxy["depends_on"]) == set(replicas)
    assert [port.split(":")[-1] for port in proxy["ports"]] == ["80"]


def test_nginx_balances_over_the_replicas_without_stickiness() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    assert conf.count("{") == conf.count("}")
    upstream = re.search(r"upstream facerec \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server (\S+?):8000\b", upstream.group(1), re.M)
    assert servers == ["api-1", "api-2"]
    assert not re.search(r"\b(ip_hash|hash|sticky)\b", upstream.group(1))
    assert "proxy_pass http://facerec;" in conf
    assert "listen 80;" in conf


def test_env_example_names_every_variable_compose_requires() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (DEPLOY / ".env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, re.M))
    assert required and required <= defined, required - defined


# --- Kubernetes -------------------------------------------------------------------------------


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def by_kind(kind: str) -> dict[str, Any]:
    (document,) = [document for _, document in manifests() if document["kind"] == kind]
    return document


@pytest.mark.parametrize(
    "manifest", manifests(), ids=lambda manifest: f"{manifest[0]}:{manifest[1]['kind']}"
)
def test_manifest_validates_against_its_kubernetes_schema(
    manifest: tuple[str, dict[str, Any]],
) -> None:
    _, document = manifest
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    document = by_kind("Deployment")
    broken = {**document, "spec": {**document["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = {**document, "spec": {**document["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_kustomization_lists_existing_manifests() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource
    # Placeholder secrets are never applied by `kubectl apply -k`.
    assert not any("secret" in resource for resource in kustomization["resources"])


def test_deployment_probes_resources_and_settings() -> None:
    deployment = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and set(resources["limits"]) == {
        "cpu",
        "memory",
    }
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": "facerec", "secretRef": "facerec"}
    assert by_kind("ConfigMap")["metadata"]["name"] == "facerec"
    assert by_kind("Secret")["metadata"]["name"] == "facerec"
    assert by_kind("ConfigMap")["data"]["FACEREC_SERVER__HOST"] == "0.0.0.0"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()
    port_names = {port["name"] for port in container["ports"]}
    assert by_kind("Service")["spec"]["ports"][0]["targetPort"] in port_names


def test_autoscaler_scales_the_deployment_on_cpu() -> None:
    hpa = by_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = by_kind("Deployment")["metadata"]["name"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2
