"""The Kubernetes manifests: probes on the right endpoints, the image's user and port, the pieces wired together.

Schema validation is scripts/check-deploy.sh's job (kubernetes-validate); these tests check what a schema
cannot: that the manifests agree with the image, the compose file and each other.
"""

from __future__ import annotations

import copy

import pytest

VARIANTS = ("cpu", "gpu")


def _container(deployment):
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_hit_readyz_and_healthz_on_the_service_port(deployments, runtime, variant):
    container = _container(deployments[variant])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(runtime.env()["FGAN_PORT"])}
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert {p["port"] for p in probes.values()} <= {"http", ports["http"]}
    annotations = deployments[variant]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(ports["http"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_as_the_image_user_with_a_read_only_root(deployments, runtime, variant):
    pod = deployments[variant]["spec"]["template"]["spec"]
    uid, _, gid = runtime.last("USER").partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(gid or uid)
    container = _container(deployments[variant])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # Python and multipart uploads need a writable /tmp.
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert any(v["name"] == tmp["name"] and "emptyDir" in v for v in pod["volumes"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_requests_and_limits_are_set(deployments, variant):
    resources = _container(deployments[variant])["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()


@pytest.mark.parametrize("variant", VARIANTS)
def test_service_hpa_and_budget_select_the_deployment(shared_manifests, deployments, variant):
    deployment = deployments[variant]
    name = deployment["metadata"]["name"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # The HPA owns the replica count; a `replicas` here would be reset by every `kubectl apply`.
    assert "replicas" not in deployment["spec"]
    service = shared_manifests[("Service", name)]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ("http", _container(deployment)["ports"][0]["containerPort"])
    target = shared_manifests[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", name)
    budget = shared_manifests[("PodDisruptionBudget", name)]["spec"]["selector"]["matchLabels"]
    assert budget.items() <= pod_labels.items()
    (source,) = _container(deployment)["envFrom"]
    assert ("ConfigMap", source["configMapRef"]["name"]) in shared_manifests


def test_images_match_the_compose_files(deployments, compose, compose_gpu):
    assert _container(deployments["cpu"])["image"] == compose["services"]["api"]["image"]
    assert _container(deployments["gpu"])["image"] == compose_gpu["services"]["api"]["image"]


def test_gpu_variant_differs_only_where_the_gpu_needs_it(deployments):
    cpu, gpu = copy.deepcopy(deployments["cpu"]), copy.deepcopy(deployments["gpu"])
    gpu_pod, gpu_container = gpu["spec"]["template"]["spec"], _container(gpu)
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert gpu_pod["nodeSelector"] and gpu_pod["tolerations"]
    env = {e["name"]: e.get("value") for e in gpu_container["env"]}
    assert env["FGAN_DEVICE"].startswith("cuda")
    assert {e["name"]: e.get("value") for e in _container(cpu)["env"]}["FGAN_DEVICE"] == "cpu"
    # Everything else (probes, security, labels, settings) must be the same in both files.
    for doc in (cpu, gpu):
        pod, container = doc["spec"]["template"]["spec"], _container(doc)
        for key in ("nodeSelector", "tolerations"):
            pod.pop(key, None)
        for key in ("image", "resources"):
            container.pop(key)
        container["env"] = [e for e in container["env"] if e["name"] != "FGAN_DEVICE"]
    assert cpu == gpu


@pytest.mark.parametrize("variant", VARIANTS)
def test_termination_grace_lets_open_requests_finish(deployments, settings_defaults, variant):
    # The preStop pause runs first, then SIGTERM, and the service drains for up to the request timeout.
    pod = deployments[variant]["spec"]["template"]["spec"]
    pause = _container(deployments[variant])["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] - pause > settings_defaults["request_timeout_s"] + 1
