"""cluster/: the cluster-launcher configs pass the schema in the ray wheel and Ray's own config
validation; the KubeRay manifests pass the fields and types of KubeRay's v1 CRDs
(tests/data/kuberay_v1.schema.json); each keeps the promises a study relies on (no trials on
the head, GPU workers from zero, token auth, nothing opened to the internet); broken copies
are rejected by the same checks; the study commands in cluster/ are valid CLI invocations; and
a simulated three-node GPU cluster runs a study spread over its nodes."""

import copy
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from helpers import stop_processes_under

from stateset_hpo.launch import main

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
KUBERAY_SCHEMA = json.loads((Path(__file__).parent / "data" / "kuberay_v1.schema.json").read_text())
LAUNCHER_CONFIGS = ["aws.yaml", "gcp.yaml"]


def load(relative: str):
    return yaml.safe_load((CLUSTER / relative).read_text())


def check_launcher_config(config: dict) -> None:
    """What `ray up` checks before it touches a cloud: defaults merged, then the schema from
    the ray wheel (ray/autoscaler/ray-schema.json) and Ray's cross-field rules."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def check_kuberay(manifest: dict) -> None:
    schema = {"$ref": f"#/definitions/{manifest.get('kind')}", "definitions": KUBERAY_SCHEMA["definitions"]}
    jsonschema.Draft7Validator(schema).validate(manifest)


def is_spot(node_type: dict) -> bool:
    node = node_type["node_config"]
    return node.get("InstanceMarketOptions", {}).get("MarketType") == "spot" or \
        node.get("scheduling", {}).get("provisioningModel") == "SPOT"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_rays_checks_and_keeps_its_promises(name):
    config = load(name)
    check_launcher_config(config)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, "GPU": 0}  # no trial is ever placed on the head
    workers = [t for n, t in types.items() if n != config["head_node_type"]]
    assert {t["resources"]["GPU"] for t in workers if not is_spot(t)} == {1, 8}
    assert all(t["min_workers"] == 0 < t["resources"]["CPU"] for t in workers)  # GPU nodes start from zero
    assert [t["resources"]["GPU"] for t in workers if is_spot(t)] == [1]
    assert config["idle_timeout_minutes"] > 0
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("export RAY_AUTH_MODE=token" in c for c in starts)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the same token on every node
    assert "--dashboard-host=127.0.0.1" in config["head_start_ray_commands"][0]
    assert "0.0.0.0" not in (CLUSTER / name).read_text()
    if config["provider"]["type"] == "aws":  # our own group (SSH from one address): never one Ray makes
        assert "security_group" not in config["provider"]
        assert all(t["node_config"]["SecurityGroupIds"] == ["YOUR-SECURITY-GROUP-ID"] for t in types.values())
    assert config["file_mounts"]["~/stateset-hpo"] == "."
    assert any("-e ~/stateset-hpo" in c for c in config["setup_commands"])


def test_the_launcher_configs_set_up_their_nodes_alike():
    """The cluster-launcher format has no includes: what is not cloud-specific must stay the same."""
    aws, gcp = load("aws.yaml"), load("gcp.yaml")
    for key in ("file_mounts", "rsync_exclude", "setup_commands", "head_start_ray_commands",
                "worker_start_ray_commands", "max_workers", "idle_timeout_minutes"):
        assert aws[key] == gcp[key], key


def _set(path, value):
    def mutate(config):
        target = config
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate", [
    _set(["available_node_types", "gpu_1x", "resources", "GPU"], "1"),  # resources must be integers
    _set(["available_node_types", "gpu_1x", "resources", "GPU"], 0.5),
    _set(["idle_timeout_minute"], 5),  # misspelt key
    _set(["available_node_types", "gpu_1x", "node_config"], KeyError),
    _set(["head_node_type"], "ray.head.default"),  # no such node type
    _set(["available_node_types", "gpu_1x", "min_workers"], 20),  # more than max_workers overall
], ids=["string-gpus", "fractional-gpus", "misspelt-key", "no-node-config", "unknown-head", "min-over-max"])
def test_a_broken_launcher_config_is_rejected(mutate):
    config = load("aws.yaml")
    mutate(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        check_launcher_config(config)


def test_kuberay_manifests_pass_the_crd_fields_and_keep_their_promises():
    cluster, job = load("kuberay/raycluster.yaml"), load("kuberay/rayjob.yaml")
    check_kuberay(cluster)
    check_kuberay(job)
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["serviceType"] == "ClusterIP"
    gpus = {}
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] == 0 < group["maxReplicas"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        gpus[group["groupName"]] = limits["nvidia.com/gpu"]
    assert sorted(gpus.values()) == [1, 8]
    images = {c["image"] for g in [head, *spec["workerGroupSpecs"]] for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}


def test_every_node_installs_the_same_pinned_versions():
    """Nodes the autoscaler starts later get the head's versions: the launcher configs and the
    image install with cluster/constraints.txt, which pins every package to one version, and its
    Ray is the image's and the manifests' rayVersion."""
    pins = {}
    for line in (CLUSTER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.!+-]*", version), line
            pins[name.lower()] = version
    for required in ("ray", "torch", "transformers", "peft", "optuna", "numpy"):
        assert required in pins, required
    for name in LAUNCHER_CONFIGS:
        installs = [c for c in load(name)["setup_commands"] if "pip install" in c and "-e ~/stateset-hpo" in c]
        assert installs and all("-c ~/stateset-hpo/cluster/constraints.txt" in c for c in installs), name
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{pins['ray']}-" in dockerfile and "-c /home/ray/stateset-hpo/cluster/constraints.txt" in dockerfile
    assert load("kuberay/raycluster.yaml")["spec"]["rayVersion"] == pins["ray"]


def test_cluster_nodes_get_least_privilege():
    """Worker nodes reach the study's bucket and nothing else; on AWS the head's own profile
    (no default full-access role) may launch and end workers and pass only the worker role."""
    aws, gcp = load("aws.yaml"), load("gcp.yaml")
    head_type = aws["available_node_types"][aws["head_node_type"]]
    assert head_type["node_config"]["IamInstanceProfile"] == {"Name": "stateset-hpo-head"}
    for config, key, expected in [(aws, "IamInstanceProfile", {"Name": "stateset-hpo-worker"}),
                                  (gcp, "serviceAccounts", None)]:
        for name, node_type in config["available_node_types"].items():
            if name != config["head_node_type"]:
                assert key in node_type["node_config"], name
                if expected:
                    assert node_type["node_config"][key] == expected
    for account in gcp["available_node_types"]["gpu_1x"]["node_config"]["serviceAccounts"]:
        assert account["scopes"] == ["https://www.googleapis.com/auth/devstorage.read_write"]
    head = json.loads((CLUSTER / "iam" / "aws-head-policy.json").read_text())
    worker = json.loads((CLUSTER / "iam" / "aws-worker-policy.json").read_text())

    def actions(policy):
        return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    assert actions(worker) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert not any("*" in a for a in actions(head) | actions(worker))  # no wildcard actions
    assert all(s["Resource"] != "*" for s in head["Statement"] if s["Action"] == "iam:PassRole")
    # the head runs submitted job code: it may launch, tag and end only this cluster's instances
    cluster = aws["cluster_name"]
    for statement in head["Statement"]:
        acts = actions({"Statement": [statement]})
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        tag_conditions = statement.get("Condition", {}).get("StringEquals", {})
        if "ec2:TerminateInstances" in acts:
            assert tag_conditions == {"ec2:ResourceTag/ray-cluster-name": cluster}
        if "ec2:CreateTags" in acts:
            assert tag_conditions in ({"ec2:ResourceTag/ray-cluster-name": cluster},
                                      {"ec2:CreateAction": "RunInstances"})
        if "ec2:RunInstances" in acts and any(r == "*" or ":instance/" in r for r in resources):
            assert tag_conditions == {"aws:RequestTag/ray-cluster-name": cluster}
    for policy in (head, worker):  # the bucket's listing: the study prefix only
        (listing,) = [s for s in policy["Statement"] if "s3:ListBucket" in actions({"Statement": [s]})]
        assert listing["Condition"]["StringLike"]["s3:prefix"] == ["stateset-hpo", "stateset-hpo/*"]


def test_kuberay_pods_run_locked_down():
    """No pod runs as root or can gain privileges; workers carry no Kubernetes API token (the
    head keeps its own: the autoscaler beside it scales the RayCluster through the API)."""
    spec = load("kuberay/raycluster.yaml")["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert all(g["template"]["spec"]["automountServiceAccountToken"] is False for g in spec["workerGroupSpecs"])


@pytest.mark.parametrize("mutate", [
    _set(["spec", "headGroupSpec", "rayStartParams", "num-cpus"], 0),  # the CRD takes strings only
    _set(["spec", "workerGroupSpecs", 0, "minReplicas"], "0"),
    _set(["spec", "workerGroupSpecs", 0, "groupName"], KeyError),
    _set(["spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "resources", "limits",
          "nvidia.com/gpu"], "one"),  # not a Kubernetes quantity
    _set(["spec", "enableInTreeAutoscale"], True),  # misspelt field
    _set(["spec", "authOptions", "mode"], "password"),
    _set(["apiVersion"], "ray.io/v1alpha1"),
], ids=["numeric-start-param", "string-replicas", "no-group-name", "bad-quantity", "misspelt-field",
        "unknown-auth-mode", "old-api"])
def test_a_broken_kuberay_manifest_is_rejected(mutate):
    manifest = load("kuberay/raycluster.yaml")
    mutate(manifest)
    with pytest.raises(jsonschema.ValidationError):
        check_kuberay(manifest)


def study_commands():
    """Every `python -m stateset_hpo.launch ...` in cluster/: README code blocks (with line
    continuations joined) and the RayJob's entrypoint."""
    text = (CLUSTER / "README.md").read_text().replace("\\\n", " ")
    commands = [line[line.index("python -m stateset_hpo.launch"):] for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                for line in block.splitlines() if "python -m stateset_hpo.launch" in line]
    return commands + [load("kuberay/rayjob.yaml")["spec"]["entrypoint"]]


def test_the_study_commands_in_cluster_are_valid(capsys):
    commands = study_commands()
    assert len(commands) >= 3 and any("--resume" in c for c in commands)
    for command in commands:
        args = shlex.split(command)[3:]
        assert "--space" in args and "--gpu-per-trial" in args, command
        assert main([*args, "--dry-run"]) == 0, (command, capsys.readouterr().err)


@pytest.mark.slow
@pytest.mark.ray
def test_a_study_spreads_over_a_simulated_multi_node_gpu_cluster(tmp_path):
    """bench/multinode_sim.py at a small size: 2 worker nodes x 1 GPU, 3 one-GPU trials (each a
    Ray Train worker). Two train at once, one per node; the 3rd gets a GPU only once a finished
    trial's placement group is freed (Train V2 leaks it without the dashboard's State API).
    (The bench's default size, 3 x 2 and 12 trials, takes three minutes here.)"""
    temp_dir = tempfile.mkdtemp(prefix="rsim-", dir="/tmp")  # short: Ray's socket paths have a length limit
    out = tmp_path / "figures.json"
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "multinode_sim.py"), "--nodes", "2", "--gpus", "1",
                               "--trials", "3", "--episodes", "16", "--json", str(out), "--temp-dir", temp_dir,
                               "--work-dir", str(tmp_path), "--record-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=540)
    finally:
        stop_processes_under(temp_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["successful_trials"] + figures["pruned_trials"] == 3 and figures["failed_trials"] == 0
    per_node = figures["train_workers_per_node"]
    assert "head" not in per_node and sorted(per_node.values()) == [1, 2]
    assert figures["max_trials_training_at_once"] == 2
    assert figures["trials_in_shared_storage"] == 3
    assert {"summary.json", "trials.csv", "report.html"} <= set(figures["results_in_shared_storage"])
    assert 0 < figures["utilisation"] <= 1
    record = json.loads((tmp_path / "multinode_sim.json").read_text())
    assert len(record["goals"]) == 5 and all(goal["met"] for goal in record["goals"])


def test_results_are_copied_to_the_shared_storage(tmp_path):
    from stateset_hpo import HPOConfig
    from stateset_hpo.shared_storage import publish_results
    from stateset_hpo.search.base import get_backend

    def shared_results_location(config):
        return get_backend(config.backend).shared_results(config)

    out = tmp_path / "head_output"
    (out / "plots").mkdir(parents=True)
    for name in ("summary.json", "trials.csv", "report.html", "plots/learning_curves.png", "unrelated.txt"):
        (out / name).write_text(name)
    bucket = tmp_path / "bucket"
    config = HPOConfig(backend="ray_tune", output_dir=str(out), study_name="s1",
                       ray_config={"storage_path": str(bucket)})
    destination = shared_results_location(config)
    assert destination == f"{bucket}/s1/results"
    assert sorted(publish_results(out, destination)) == ["plots", "report.html", "summary.json", "trials.csv"]
    copied = {p.relative_to(bucket / "s1" / "results").as_posix() for p in bucket.rglob("*") if p.is_file()}
    assert copied == {"summary.json", "trials.csv", "report.html", "plots/learning_curves.png"}
    assert (bucket / "s1" / "results" / "summary.json").read_text() == "summary.json"
    s3 = config.replace(ray_config={"storage_path": "s3://bucket/hpo/"})
    assert shared_results_location(s3) == "s3://bucket/hpo/s1/results"
    assert shared_results_location(config.replace(ray_config={})) is None  # results stay in output_dir
    assert shared_results_location(HPOConfig(backend="optuna")) is None


def test_a_local_storage_path_on_a_multi_node_cluster_is_flagged():
    from stateset_hpo.search.ray.storage import multi_node_warning

    assert multi_node_warning("/data/ray_results", nodes=1, autoscaling=False) is None
    assert "3 nodes" in multi_node_warning("/data/ray_results", nodes=3, autoscaling=False)
    assert "on demand" in multi_node_warning("/data/ray_results", nodes=1, autoscaling=True)
    assert multi_node_warning("s3://bucket/hpo", nodes=3, autoscaling=True) is None


def test_aws_keys_a_study_would_write_to_a_clusters_logs_are_flagged():
    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE

    from stateset_hpo.search.ray.connect import PROPAGATED_KEYS, propagated_keys_warning

    # the keys Tune copies into trials' runtime environments (a Ray upgrade that changes them fails here)
    assert set(PROPAGATED_KEYS) == {key for key in ENV_VARS_TO_PROPAGATE if key.startswith("AWS_")}
    keys = {"AWS_ACCESS_KEY_ID": "AKIA0", "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/bin"}
    text = propagated_keys_warning(agent_logs_info=True, environ=keys)
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are set" in text and "runtime_env_agent.log" in text
    assert "AKIA0" not in text  # (names, never values)
    assert propagated_keys_warning(agent_logs_info=False, environ=keys) is None  # connect's quiet local instance
    assert propagated_keys_warning(agent_logs_info=True, environ={"PATH": "/bin", "AWS_SESSION_TOKEN": ""}) is None


@pytest.mark.slow  # (10 s of Ray: CI runs it)
@pytest.mark.usefixtures("ray_local")
def test_a_ray_study_that_joins_a_running_instance_with_aws_keys_warns_once(tmp_path, monkeypatch):
    from helpers import study_config
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATEST0")
    config = study_config(tmp_path, "ray_tune", n_trials=1, validation_top_k=1)
    with pytest.warns(UserWarning, match="AWS_ACCESS_KEY_ID is set where the study's driver runs") as caught:
        run_study(config, TrialSpec(objective=lambda params: {"eval_reward": params["learning_rate"]}))
    assert sum("AWS_ACCESS_KEY_ID" in str(w.message) for w in caught) == 1  # not again for the validation re-run


def _admits(policy: dict, source: dict, port: int) -> bool:
    """Whether a NetworkPolicy's ingress rules admit ``source`` ({"labels", "same_namespace"})
    on ``port`` (the API's semantics for the selectors used here: matchLabels, and
    namespaceSelector {} for every namespace)."""
    def peer_matches(peer):
        if "namespaceSelector" not in peer and not source["same_namespace"]:
            return False
        assert peer.get("namespaceSelector", {}) == {}, "only namespaceSelector {} is modelled here"
        wanted = peer.get("podSelector", {}).get("matchLabels", {})
        return all(source["labels"].get(k) == v for k, v in wanted.items())

    return any(any(peer_matches(p) for p in rule["from"])
               and (not rule.get("ports") or any(p["port"] == port for p in rule["ports"]))
               for rule in policy["spec"]["ingress"])


def test_the_network_policy_admits_only_the_clusters_own_pods_to_gcs_and_the_dashboard():
    cluster, job = load("kuberay/raycluster.yaml"), load("kuberay/rayjob.yaml")
    policies = list(yaml.safe_load_all((CLUSTER / "kuberay" / "networkpolicy.yaml").read_text()))
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    dashboard = int(spec["headGroupSpec"]["rayStartParams"].get("dashboard-port", 8265))
    # the pods KubeRay creates, labelled as it labels them
    head = {"ray.io/cluster": name, "ray.io/node-type": "head"}
    workers = [{"ray.io/cluster": name, "ray.io/node-type": "worker", "ray.io/group": g["groupName"]}
               for g in spec["workerGroupSpecs"]]

    def policy_for(labels):
        (policy,) = [p for p in policies if p["spec"]["policyTypes"] == ["Ingress"] and all(
            labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())]
        return policy

    member = {"labels": workers[0], "same_namespace": True}
    submitter = {"labels": {"ray.io/originated-from-crd": "RayJob", "app.kubernetes.io/created-by": "kuberay-operator",
                            "ray.io/originated-from-cr-name": job["metadata"]["name"]}, "same_namespace": True}
    operator = {"labels": {"app.kubernetes.io/name": "kuberay-operator"}, "same_namespace": False}
    stranger = {"labels": {"app": "web"}, "same_namespace": True}
    other_cluster = {"labels": {"ray.io/cluster": "someone-else", "ray.io/node-type": "head"}, "same_namespace": True}
    for port in (6379, dashboard, 10002):  # GCS, dashboard, a worker port
        assert _admits(policy_for(head), member, port)
        assert all(_admits(policy_for(w), {"labels": head, "same_namespace": True}, port) for w in workers)
        for outsider in (stranger, other_cluster):
            assert not _admits(policy_for(head), outsider, port)
            assert not any(_admits(policy_for(w), outsider, port) for w in workers)
        for client in (submitter, operator):  # the dashboard only
            assert _admits(policy_for(head), client, port) == (port == dashboard)
            assert not any(_admits(policy_for(w), client, port) for w in workers)


def test_the_readme_says_exactly_what_ray_gives_the_gcp_head():
    """Ray's launcher binds its own head service account to these roles project-wide (no
    option to choose another); cluster/README.md must list exactly the installed Ray's."""
    import ast
    import re

    import ray  # (its GCP module needs Google's client libraries to import: read its source instead)

    source = Path(ray.__file__).parent / "autoscaler" / "_private" / "gcp" / "config.py"
    constants = {}  # the module's top-level assignments of strings and lists (names joined by +)
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = eval(compile(ast.Expression(node.value), "ray", "eval"),
                                                     {"__builtins__": {}}, dict(constants))
            except Exception:  # (calls, imports: not a constant)
                pass
    DEFAULT_SERVICE_ACCOUNT_ID, DEFAULT_SERVICE_ACCOUNT_ROLES = (constants["DEFAULT_SERVICE_ACCOUNT_ID"],
                                                                 constants["DEFAULT_SERVICE_ACCOUNT_ROLES"])
    text = (CLUSTER / "README.md").read_text()
    listed = re.search(r"<!-- gcp-head-roles -->(.*?)<!-- /gcp-head-roles -->", text).group(1)
    assert re.findall(r"`(roles/[^`]+)`", listed) == DEFAULT_SERVICE_ACCOUNT_ROLES
    assert f"`{DEFAULT_SERVICE_ACCOUNT_ID}`" in text
