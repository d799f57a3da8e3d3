#!/usr/bin/env python3
"""Generates the sample that `tessera simulate` runs with no arguments: cluster.yaml and
workload.yaml, next to this script.

Deterministic: the random numbers come from a seeded SplitMix64 written here (not Python's
`random`, whose methods may change between versions), and YAML is written by a small emitter
with a fixed key order, so re-running this script reproduces both files byte for byte. The
files are checked in and embedded in the binary; edit this script, re-run it, commit both.

    python3 generate.py [--seed N] [--stats]

--stats prints each file's size and a demand-versus-capacity profile of the workload (as if
every pod started on arrival), which is how the load below was tuned: CPU saturates during the
ETL bursts, GPUs (H100s above all) are oversubscribed in the afternoon, so queueing, gangs and
pending reasons all have something to show.

DRA (resource.k8s.io/v1) has its own rack, drawn last from the random stream so that every
other object is as it was without it: nodes that publish 8 GPUs and 8 RDMA NICs in
ResourceSlices (not through the device plugin), and training jobs that claim GPU+NIC pairs
under one PCIe root from a ResourceClaimTemplate.
"""

import argparse
import os
import re
import sys

SEED = 20240601
HOURS = 6
SPAN_S = HOURS * 3600
HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = "registry.example.com"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ZONE = "topology.kubernetes.io/zone"
RACK = "topology.kubernetes.io/rack"
HOST = "kubernetes.io/hostname"
PRODUCT = "nvidia.com/gpu.product"
POD_GROUP = "scheduling.x-k8s.io/pod-group"
K8S_SCHEDULING = "scheduling.k8s.io/v1alpha3"
COSCHEDULING = "scheduling.x-k8s.io/v1alpha1"
ARRIVAL = "tessera.io/arrival"
DURATION = "tessera.io/duration"
GPU_MILLI = "alibabacloud.com/gpu-milli"
DRA_API = "resource.k8s.io/v1"
GPU_DRIVER = "gpu.example.com"
NIC_DRIVER = "rdma.example.com"
PCIE_ROOT = "resource.kubernetes.io/pcieRoot"
DRA_TAINT = {"key": "gpu.example.com/dra", "value": "present", "effect": "NoSchedule"}
DRA_TOLERATION = {"key": "gpu.example.com/dra", "operator": "Exists", "effect": "NoSchedule"}
PAIR_TEMPLATE = "gpu-nic-pair"


class Rng:
    """SplitMix64: tiny, well mixed, and the same on every Python."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return z ^ (z >> 31)

    def random(self):
        """A float in [0, 1) with 53 random bits."""
        return (self.next() >> 11) / float(1 << 53)

    def int(self, lo, hi):
        """An integer in [lo, hi]."""
        return lo + self.next() % (hi - lo + 1)

    def choice(self, items):
        return items[self.next() % len(items)]

    def weighted(self, pairs):
        """One value of [(value, weight), ...], by weight."""
        total = sum(w for _, w in pairs)
        x = self.random() * total
        for value, w in pairs:
            x -= w
            if x < 0:
                return value
        return pairs[-1][0]

    def log_uniform(self, lo, hi):
        """Between lo and hi, uniform in log space: many short, some long, as real runtimes."""
        return lo * (hi / lo) ** self.random()


# --- YAML ------------------------------------------------------------------------------------

PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$|^[0-9][A-Za-z0-9_./-]*[A-Za-z_/][A-Za-z0-9_./-]*$")
RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
FLOW_WIDTH = 110


def scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    # Plain only when no YAML reader could take it for a number, a boolean or syntax.
    if PLAIN.match(s) and s.lower() not in RESERVED and not re.match(r"^[0-9.]+(e[0-9]+)?$", s.lower()):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def flow(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(flow(x) for x in v) + "]"
    return scalar(v)


def block(v, indent):
    """Lines of `v` at `indent`: mappings in block style, any value whose flow form is short
    on one line (that keeps 2,000 pods of YAML small and still readable)."""
    pad = " " * indent
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            key = f"{pad}{scalar(k)}:"
            if not isinstance(x, (dict, list)) or len(key) + 1 + len(flow(x)) <= FLOW_WIDTH or not x:
                lines.append(f"{key} {flow(x)}")
            else:
                lines.append(key)
                # Lists sit at their key's indentation, as kubectl writes them.
                lines.extend(block(x, indent if isinstance(x, list) else indent + 2))
    else:
        for x in v:
            if not isinstance(x, dict) or len(pad) + 2 + len(flow(x)) <= FLOW_WIDTH:
                lines.append(f"{pad}- {flow(x)}")
            else:
                inner = block(x, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
    return lines


def document(obj):
    return "---\n" + "\n".join(block(obj, 0)) + "\n"


def go_duration(seconds):
    """Go's time.Duration.String for whole seconds: 0s, 45s, 12m5s, 1h0m30s."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


# --- Cluster ---------------------------------------------------------------------------------

# Racks of 16 nodes, 10 per zone: 6 of CPU nodes, 4 of GPU nodes (60% / 40%).
RACK_SIZE = 16
CPU_RACKS = [("c32", 32, 128), ("c48", 48, 192), ("c64", 64, 256), ("c64", 64, 256), ("c48", 48, 192), ("m64", 64, 512)]
# (product, cores, memory GiB): 8 GPUs each, two NVLink islands of 4.
GPU_RACKS = {"zone-a": ["A100", "A100", "A100", "H100"], "zone-b": ["A100", "A100", "H100", "H100"]}
GPU_SHAPE = {"A100": (96, 1024), "H100": (128, 2048)}
CORDONED = {"zone-a-r02-n05", "zone-b-r07-n11"}
# One more rack in zone-a of H100 nodes whose GPUs and NICs are DRA devices: 8 GPUs and 8 NICs
# each, a GPU and a NIC per PCIe root port slot, two of each under each of 4 roots.
DRA_RACK = "zone-a-r10"
DRA_NODES = 16
DRA_DEVICES = 8
PCIE_ROOTS = 4


def node(name, zone, rack, cores, mem_gib, extra_labels, gpus=0, product=None, taint=None):
    labels = {HOST: name, ZONE: zone, RACK: rack, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    labels.update(extra_labels)
    meta = {"name": name, "labels": labels}
    spec = {}
    if gpus:
        meta["annotations"] = {"tessera.io/gpu-islands": "0,0,0,0,1,1,1,1"}
        spec["taints"] = [dict(GPU_TAINT)]
    if taint:
        spec["taints"] = [dict(taint)]
    if name in CORDONED:
        # What `kubectl cordon` leaves: the flag, and the taint the node controller adds.
        spec["unschedulable"] = True
        spec.setdefault("taints", []).append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    capacity = {"cpu": str(cores), "memory": f"{mem_gib}Gi", "pods": "110"}
    # The kubelet reserves a little for the system: allocatable is what pods get.
    allocatable = {"cpu": f"{cores * 1000 - 500}m", "memory": f"{mem_gib - max(4, mem_gib // 64)}Gi", "pods": "110"}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        allocatable["nvidia.com/gpu"] = str(gpus)
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": meta}
    if spec:
        obj["spec"] = spec
    obj["status"] = {"capacity": capacity, "allocatable": allocatable}
    return obj


def cluster():
    objs = []
    for zone in ["zone-a", "zone-b"]:
        for r in range(10):
            rack = f"{zone}-r{r:02d}"
            for n in range(RACK_SIZE):
                name = f"{rack}-n{n:02d}"
                if r < len(CPU_RACKS):
                    itype, cores, mem = CPU_RACKS[r]
                    objs.append(node(name, zone, rack, cores, mem, {"node.kubernetes.io/instance-type": itype}))
                else:
                    product = GPU_RACKS[zone][r - len(CPU_RACKS)]
                    cores, mem = GPU_SHAPE[product]
                    labels = {"node.kubernetes.io/instance-type": f"gpu-8x{product.lower()}", PRODUCT: product,
                              "nvidia.com/gpu.count": "8"}
                    objs.append(node(name, zone, rack, cores, mem, labels, gpus=8, product=product))
    return objs


def dra_cluster():
    """The DRA rack: each node followed by its two ResourceSlices (one pool per driver, named
    after the node, complete in one slice)."""
    objs = []
    cores, mem = GPU_SHAPE["H100"]
    for n in range(DRA_NODES):
        name = f"{DRA_RACK}-n{n:02d}"
        labels = {"node.kubernetes.io/instance-type": "gpu-8xh100-dra"}
        # Tainted as the device-plugin GPU nodes are, so CPU work leaves them to GPU jobs.
        objs.append(node(name, "zone-a", DRA_RACK, cores, mem, labels, taint=DRA_TAINT))
        for driver, prefix in [(GPU_DRIVER, "gpu"), (NIC_DRIVER, "nic")]:
            devices = []
            for i in range(DRA_DEVICES):
                root = i * PCIE_ROOTS // DRA_DEVICES
                attributes = {PCIE_ROOT: {"string": f"pci0000:{root * 0x40:02x}"}, "index": {"int": i}}
                device = {"name": f"{prefix}-{i}", "attributes": attributes}
                if driver == GPU_DRIVER:
                    attributes["model"] = {"string": "H100"}
                    device["capacity"] = {"memory": {"value": "80Gi"}}
                devices.append(device)
            objs.append({"apiVersion": DRA_API, "kind": "ResourceSlice", "metadata": {"name": f"{name}-{driver}"},
                         "spec": {"driver": driver, "nodeName": name,
                                  "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
                                  "devices": devices}})
    return objs


def device_classes():
    return [{"apiVersion": DRA_API, "kind": "DeviceClass", "metadata": {"name": driver},
             "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{driver}"'}}]}}
            for driver in (GPU_DRIVER, NIC_DRIVER)]


def cluster_setup():
    """Priority classes and namespaces: cluster-wide objects the workloads refer to."""
    objs = [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "production-service"},
         "value": 100000, "description": "Long-running user-facing services."},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "training"},
         "value": 1000, "description": "GPU training jobs."},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "batch-low"},
         "value": 10, "preemptionPolicy": "Never", "description": "Batch work that waits rather than preempts."},
    ]
    for ns, labels in [
        ("web", {"team": "web", "tier": "production"}),
        ("data", {"team": "data", "tier": "production"}),
        ("batch", {"team": "data", "tier": "batch"}),
        ("ml", {"team": "ml", "tier": "research"}),
        ("inference", {"team": "ml", "tier": "production"}),
        ("sandbox", {"team": "platform", "tier": "dev"}),
    ]:
        objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
    return objs + device_classes()


# --- Workload --------------------------------------------------------------------------------


def timing(arrival, duration=None):
    ann = {ARRIVAL: go_duration(arrival)}
    if duration is not None:
        ann[DURATION] = go_duration(duration)
    return ann


def container(image, cpu, mem, gpus=0):
    requests = {"cpu": cpu, "memory": mem}
    resources = {"requests": requests}
    if gpus:
        # Extended resources are requested through limits (requests default to them).
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {"name": "main", "image": f"{REGISTRY}/{image}", "resources": resources}


def controller(kind, name, ns, labels, annotations, spec):
    api = "batch/v1" if kind == "Job" else "apps/v1"
    meta = {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def service(rng, name, ns, replicas, arrival, duration, cpu, mem, version="v1"):
    """A Deployment spread evenly over zones, one replica per host (required while the
    service is small enough for that to be cheap, preferred beyond)."""
    app = {"app": name}
    labels = {"app": name, "version": version}
    anti_term = {"labelSelector": {"matchLabels": app}, "topologyKey": HOST}
    if replicas <= 16:
        anti = {"requiredDuringSchedulingIgnoredDuringExecution": [anti_term]}
    else:
        anti = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": anti_term}]}
    pod_spec = {
        "priorityClassName": "production-service",
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": app}}
        ],
        "affinity": {"podAntiAffinity": anti},
        "containers": [dict(container(f"{name}:{version}", cpu, mem), ports=[{"containerPort": 8080}])],
    }
    spec = {"replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    return controller("Deployment", f"{name}-{version}" if version != "v1" else name, ns, app,
                      timing(arrival, duration), spec)


SERVICES = [
    "frontend", "api-gateway", "checkout", "cart", "catalog", "search", "recommendations", "auth",
    "user-profile", "notifications", "email", "payments", "inventory", "shipping", "reviews", "ads",
    "analytics-ingest", "feature-flags", "pricing", "geo", "image-resizer", "sessions",
]


def services(rng, out):
    for i, name in enumerate(SERVICES):
        replicas = rng.weighted([(3, 3), (4, 3), (6, 4), (8, 3), (12, 3), (16, 2), (24, 2), (32, 1)])
        cpu = rng.choice(["250m", "500m", "1", "2", "4"])
        mem = rng.choice(["512Mi", "1Gi", "2Gi", "4Gi", "8Gi"])
        # Most services are up from the start; a few deploy during the day.
        arrival = rng.int(0, 600) if i < 18 else rng.int(3600, 4 * 3600)
        if i in (2, 6):
            # A rollout: v1 retires as v2 (another template, another hash) arrives.
            switch = rng.int(2 * 3600, 4 * 3600)
            out.append(service(rng, name, "web", replicas, arrival, switch + 300 - arrival, cpu, mem))
            out.append(service(rng, name, "web", replicas, switch, None, cpu, mem, version="v2"))
        else:
            out.append(service(rng, name, "web", replicas, arrival, None, cpu, mem))
    # A canary that lives an hour and a half, then goes away.
    out.append(service(rng, "search-canary", "web", 2, 5400, 5400, "1", "2Gi"))
    # A ReplicaSet left over from before Deployments, as clusters have.
    labels = {"app": "legacy-reporting"}
    out.append(controller("ReplicaSet", "legacy-reporting", "web", labels, timing(0), {
        "replicas": 4, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [container("reporting:2019", "1", "4Gi")]}}}))


def stateful_sets(rng, out):
    for name, replicas, cpu, mem in [("postgres", 3, "8", "64Gi"), ("redis", 6, "2", "16Gi"), ("kafka", 5, "4", "32Gi")]:
        labels = {"app": name}
        pod_spec = {
            "priorityClassName": "production-service",
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": labels}, "topologyKey": HOST}]}},
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels}}
            ],
            "containers": [container(f"{name}:stable", cpu, mem)],
        }
        out.append(controller("StatefulSet", name, "data", labels, timing(0), {
            "replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec}}))


def batch_jobs(rng, out):
    """CPU batch: a trickle of small jobs all day, and two ETL bursts (at 1h and 4h) of wide
    jobs that ask for more CPU than the CPU nodes have, so that pods queue until others end."""
    jobs = [(rng.int(0, SPAN_S - 1800), False) for _ in range(80)]
    for start in (3600, 4 * 3600):
        jobs += [(start + rng.int(0, 900), True) for _ in range(28)]
    jobs.sort()
    for i, (arrival, wide) in enumerate(jobs):
        if wide:
            kind = rng.weighted([("etl", 3), ("backfill", 1), ("sort", 1)])
            parallelism = rng.weighted([(16, 1), (24, 2), (32, 2)])
            cores = rng.weighted([(8, 1), (12, 1), (16, 2)])
            duration = rng.log_uniform(2700, 3 * 3600)
        else:
            kind = rng.weighted([("report", 2), ("ml-features", 2), ("etl", 1)])
            parallelism = rng.weighted([(1, 2), (2, 2), (4, 3), (8, 2), (16, 1)])
            cores = rng.weighted([(1, 2), (2, 3), (4, 3), (8, 1)])
            duration = rng.log_uniform(300, 2 * 3600)
        highmem = kind == "ml-features" and rng.random() < 0.5
        mem_gib = cores * (rng.choice([6, 8]) if highmem else rng.choice([2, 4]))
        name = f"{kind}-{i:04d}"
        labels = {"app": kind, "job": name}
        spec = {"parallelism": parallelism}
        if kind == "sort":
            # One pod per shard, each knowing its shard from the completion index.
            spec["completionMode"] = "Indexed"
            spec["completions"] = parallelism
        elif rng.random() < 0.3:
            # More work than runs at once: the Job controller caps pods at parallelism.
            spec["completions"] = parallelism * rng.int(2, 4)
        elif rng.random() < 0.15:
            spec["completions"] = max(1, parallelism // 2)
        pod_spec = {"priorityClassName": "batch-low", "restartPolicy": "Never"}
        if highmem:
            pod_spec["nodeSelector"] = {"node.kubernetes.io/instance-type": "m64"}
        pod_spec["containers"] = [container(f"{kind}:1.4", str(cores), f"{mem_gib}Gi")]
        spec["template"] = {"metadata": {"labels": labels}, "spec": pod_spec}
        out.append(controller("Job", name, "batch", {"app": kind}, timing(arrival, duration), spec))


def gpu_pod_spec(gpus, product=None, extra=None):
    spec = {"priorityClassName": "training", "restartPolicy": "Never", "tolerations": [dict(GPU_TOLERATION)]}
    if product:
        spec["nodeSelector"] = {PRODUCT: product}
    if extra:
        spec.update(extra)
    spec["containers"] = [container("trainer:2.3", str(8 * gpus), f"{80 * gpus}Gi", gpus=gpus)]
    return spec


def pod_group(i, name, pods, gpus):
    """The gang of distributed job `i`, alternating the two APIs (chosen by index, not by the
    random stream, so that adding gangs left every other object as it was): Kubernetes' own
    PodGroup, which pods join through spec.schedulingGroup, every other one confined to a rack;
    and scheduler-plugins coscheduling's, which pods join through a label, some with a timeout
    or the least free resources the whole gang needs."""
    meta = {"name": name, "namespace": "ml", "labels": {"app": "pretrain"}}
    if i % 2 == 0:
        spec = {"priorityClassName": "training", "schedulingPolicy": {"gang": {"minCount": pods}}}
        if i % 4 == 0:
            spec["schedulingConstraints"] = {"topology": [{"key": RACK}]}
        return {"apiVersion": K8S_SCHEDULING, "kind": "PodGroup", "metadata": meta, "spec": spec}
    spec = {"minMember": pods}
    if i % 4 == 1:
        spec["scheduleTimeoutSeconds"] = 900
    else:
        spec["minResources"] = {"cpu": str(8 * gpus * pods), "memory": f"{80 * gpus * pods}Gi",
                                "nvidia.com/gpu": str(gpus * pods)}
    return {"apiVersion": COSCHEDULING, "kind": "PodGroup", "metadata": meta, "spec": spec}


def training_jobs(rng, out, groups):
    """GPU training: single-pod jobs of 1-8 whole GPUs, and distributed jobs of 2-8 pods that
    only make progress all together: gangs, each with its PodGroup in `groups` (by namespace
    and Job name)."""
    for i in range(70):
        gpus = rng.weighted([(1, 8), (2, 5), (4, 4), (8, 3)])
        arrival = rng.int(0, SPAN_S - 3600)
        duration = rng.log_uniform(1200, 3 * 3600)
        product = "H100" if rng.random() < 0.25 else None
        name = f"finetune-{i:03d}"
        labels = {"app": "finetune", "job": name}
        spec = {"template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(gpus, product)}}
        out.append(controller("Job", name, "ml", {"app": "finetune"}, timing(arrival, duration), spec))
    for i in range(34):
        pods = rng.weighted([(2, 4), (3, 1), (4, 4), (6, 1), (8, 2)])
        gpus = 8 if rng.random() < 0.8 else 4
        # Big runs start in the afternoon, when the fine-tunes have taken their share.
        arrival = rng.int(1800, SPAN_S - 2 * 3600) if i % 3 else rng.int(2 * 3600, 4 * 3600)
        duration = rng.log_uniform(3600, 4 * 3600)
        product = "H100" if rng.random() < 0.45 else None
        name = f"pretrain-{i:03d}"
        group = pod_group(i, name, pods, gpus)
        groups[("ml", name)] = group
        labels = {"app": "pretrain", "job": name}
        extra = None
        if group["apiVersion"] == COSCHEDULING:
            labels[POD_GROUP] = name
        else:
            extra = {"schedulingGroup": {"podGroupName": name}}
        # torchrun-style: each pod knows its rank from the completion index.
        spec = {"completionMode": "Indexed", "completions": pods, "parallelism": pods,
                "template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(gpus, product, extra)}}
        out.append(controller("Job", name, "ml", {"app": "pretrain"}, timing(arrival, duration), spec))


def inference(rng, out):
    """Model servers sharing GPUs by the thousandth (Alibaba's GPU-sharing annotation)."""
    models = ["llama-8b", "mistral-7b", "whisper", "embedder", "reranker", "sdxl", "ocr", "translate",
              "moderation", "asr-small", "tts", "vision-tagger", "qwen-7b", "phi-3", "clip", "detector"]
    for i, model in enumerate(models):
        replicas = rng.weighted([(2, 2), (4, 3), (6, 2), (8, 2), (12, 1), (16, 1)])
        milli = rng.weighted([(250, 3), (500, 2)])
        arrival = rng.int(0, 900) if i < 10 else rng.int(3600, 5 * 3600)
        duration = None if i < 13 else rng.int(3600, 2 * 3600)
        labels = {"app": model}
        annotations = {GPU_MILLI: str(milli)}
        if i % 4 == 0:
            annotations["alibabacloud.com/gpu-card-model"] = "A100"
        pod_spec = {
            "priorityClassName": "production-service",
            "tolerations": [dict(GPU_TOLERATION)],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": PRODUCT, "operator": "Exists"}]}]}}},
            "containers": [container(f"serve-{model}:3", rng.choice(["2", "4"]), rng.choice(["16Gi", "32Gi"]))],
        }
        spec = {"replicas": replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}}
        out.append(controller("Deployment", f"serve-{model}", "inference", labels, timing(arrival, duration), spec))


def never_fit(out):
    """Pods no node can take, one per reason, so the pending report has each to show."""
    def pod(name, arrival, spec_extra, cpu="1", mem="1Gi", gpus=0):
        spec = dict(spec_extra)
        spec["containers"] = [container("probe:1", cpu, mem, gpus=gpus)]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "sandbox", "labels": {"app": "impossible"},
                             "annotations": timing(arrival)},
                "spec": spec}
    tolerate = {"tolerations": [dict(GPU_TOLERATION)]}
    out += [
        pod("sixteen-gpus", 600, tolerate, cpu="16", mem="64Gi", gpus=16),
        pod("zone-c-only", 1200, {"nodeSelector": {ZONE: "zone-c"}}),
        pod("wants-b200", 1800, dict(tolerate, nodeSelector={PRODUCT: "B200"}), gpus=1),
        pod("four-tebibytes", 2400, {}, cpu="8", mem="4Ti"),
        pod("forgot-toleration", 3000, {}, cpu="4", mem="32Gi", gpus=1),
        pod("two-hundred-cores", 3600, {}, cpu="200", mem="64Gi"),
    ]


def dra_claims():
    """What DRA pods claim from: a template of one GPU and one NIC under one PCIe root (a pod
    takes one claim from it per pair), and a claim for one H100 of at least 40Gi, named by one
    pod."""
    pair = {"devices": {
        "requests": [
            {"name": "gpu", "exactly": {"deviceClassName": GPU_DRIVER, "count": 1}},
            {"name": "nic", "exactly": {"deviceClassName": NIC_DRIVER, "count": 1}},
        ],
        "constraints": [{"requests": ["gpu", "nic"], "matchAttribute": PCIE_ROOT}],
    }}
    h100 = {"devices": {"requests": [{"name": "gpu", "exactly": {
        "deviceClassName": GPU_DRIVER,
        "selectors": [
            {"cel": {"expression": f'device.attributes["{GPU_DRIVER}"].model == "H100"'}},
            {"cel": {"expression": f'device.capacity["{GPU_DRIVER}"].memory.compareTo(quantity("40Gi")) >= 0'}},
        ],
    }}]}}
    return [
        {"apiVersion": DRA_API, "kind": "ResourceClaimTemplate",
         "metadata": {"name": PAIR_TEMPLATE, "namespace": "ml"}, "spec": {"spec": pair}},
        {"apiVersion": DRA_API, "kind": "ResourceClaim", "metadata": {"name": "notebook-h100", "namespace": "ml"},
         "spec": h100},
    ]


def dra_pod_spec(pairs, extra=None):
    """A trainer taking `pairs` GPU+NIC pairs, one claim of the template each, which its
    container names in resources.claims as on a real cluster."""
    spec = {"priorityClassName": "training", "restartPolicy": "Never", "tolerations": [dict(DRA_TOLERATION)]}
    if extra:
        spec.update(extra)
    names = [f"pair-{k}" for k in range(pairs)]
    c = container("trainer:2.3", str(8 * pairs), f"{80 * pairs}Gi")
    c["resources"]["claims"] = [{"name": n} for n in names]
    spec["containers"] = [c]
    spec["resourceClaims"] = [{"name": n, "resourceClaimTemplateName": PAIR_TEMPLATE} for n in names]
    return spec


def dra_jobs(rng, out, groups):
    """DRA training: single-pod jobs of 1, 2 or 4 GPU+NIC pairs all day, one gang of 4 pods of
    4 pairs each, and a notebook on one H100 chosen by selectors. All of it together asks for
    fewer GPUs than the DRA rack has, so it places."""
    for i in range(30):
        pairs = rng.weighted([(1, 3), (2, 3), (4, 2)])
        arrival = rng.int(0, SPAN_S - 3600)
        duration = rng.log_uniform(1200, 3 * 3600)
        name = f"dra-finetune-{i:03d}"
        labels = {"app": "dra-finetune", "job": name}
        spec = {"template": {"metadata": {"labels": labels}, "spec": dra_pod_spec(pairs)}}
        out.append(controller("Job", name, "ml", {"app": "dra-finetune"}, timing(arrival, duration), spec))
    pods, pairs = 4, 4
    name = "dra-pretrain"
    groups[("ml", name)] = {
        "apiVersion": K8S_SCHEDULING, "kind": "PodGroup",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app": name}},
        "spec": {"priorityClassName": "training", "schedulingPolicy": {"gang": {"minCount": pods}},
                 "schedulingConstraints": {"topology": [{"key": RACK}]}},
    }
    labels = {"app": name, "job": name}
    extra = {"schedulingGroup": {"podGroupName": name}}
    spec = {"completionMode": "Indexed", "completions": pods, "parallelism": pods,
            "template": {"metadata": {"labels": labels}, "spec": dra_pod_spec(pairs, extra)}}
    arrival = rng.int(2 * 3600, 4 * 3600)
    duration = rng.log_uniform(3600, 4 * 3600)
    out.append(controller("Job", name, "ml", {"app": name}, timing(arrival, duration), spec))
    c = container("notebook:1", "4", "64Gi")
    c["resources"]["claims"] = [{"name": "gpu"}]
    out.append({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "notebook", "namespace": "ml", "labels": {"app": "notebook"},
                             "annotations": timing(rng.int(600, 3600))},
                "spec": {"tolerations": [dict(DRA_TOLERATION)], "containers": [c],
                         "resourceClaims": [{"name": "gpu", "resourceClaimName": "notebook-h100"}]}})


def workload(rng):
    out = []
    groups = {}
    services(rng, out)
    stateful_sets(rng, out)
    inference(rng, out)
    batch_jobs(rng, out)
    training_jobs(rng, out, groups)
    never_fit(out)
    dra_jobs(rng, out, groups)
    # Input order is arrival order, which is how people read a trace; a PodGroup (which has no
    # arrival of its own) comes just before the Job whose pods join it, and what claims are made
    # from (no arrival either) comes first.
    work = dra_claims()
    for o in sorted(out, key=lambda o: (arrival_of(o), o["kind"], o["metadata"]["name"])):
        group = groups.get((o["metadata"]["namespace"], o["metadata"]["name"])) if o["kind"] == "Job" else None
        if group:
            work.append(group)
        work.append(o)
    return work


def arrival_of(obj):
    text = obj["metadata"]["annotations"][ARRIVAL]
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", text))


# --- Stats -----------------------------------------------------------------------------------


def qty(s):
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for u, f in units.items():
        if s.endswith(u):
            return float(s[: -len(u)]) * f
    return float(s)


def pods_of(obj):
    """(count, cpu, gpus, gang, h100-only, DRA GPUs) as the ingest expands it; enough for a
    load profile. Every DRA claim of the sample holds one GPU."""
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        n, pod_spec, meta = 1, spec, obj["metadata"]
    else:
        if obj["kind"] == "Job":
            n = spec.get("parallelism", 1)
            if "completions" in spec:
                n = min(n, spec["completions"])
        else:
            n = spec.get("replicas", 1)
        pod_spec, meta = spec["template"]["spec"], spec["template"]["metadata"]
    c = pod_spec["containers"][0]["resources"]
    gpus = float(c.get("limits", {}).get("nvidia.com/gpu", 0))
    gpus += int(meta.get("annotations", {}).get(GPU_MILLI, 0)) / 1000
    h100 = pod_spec.get("nodeSelector", {}).get(PRODUCT) == "H100"
    gang = POD_GROUP in meta.get("labels", {}) or "schedulingGroup" in pod_spec
    return n, qty(c["requests"]["cpu"]), gpus, gang, h100, len(pod_spec.get("resourceClaims", []))


def stats(cluster_objs, work, sizes):
    groups = [o for o in work if o["kind"] == "PodGroup"]
    apis = {api: sum(1 for g in groups if g["apiVersion"] == api) for api in (K8S_SCHEDULING, COSCHEDULING)}
    work = [o for o in work if ARRIVAL in o["metadata"].get("annotations", {})]
    nodes = [o for o in cluster_objs if o["kind"] == "Node"]
    gpu_nodes = [n for n in nodes if "nvidia.com/gpu" in n["status"]["allocatable"]]
    dra_nodes = {o["spec"]["nodeName"] for o in cluster_objs if o["kind"] == "ResourceSlice"}
    cpu_nodes = [n for n in nodes if n not in gpu_nodes and n["metadata"]["name"] not in dra_nodes]
    cpu_cap = sum(qty(n["status"]["allocatable"]["cpu"]) for n in cpu_nodes)
    gpu_cap = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in gpu_nodes)
    dra_cap = sum(len(o["spec"]["devices"]) for o in cluster_objs
                  if o["kind"] == "ResourceSlice" and o["spec"]["driver"] == GPU_DRIVER)
    print(f"files: {sizes}", file=sys.stderr)
    print(f"nodes: {len(nodes)} ({len(cpu_nodes)} CPU, {len(gpu_nodes)} GPU, {len(dra_nodes)} DRA); "
          f"CPU-node cores {cpu_cap:.0f}, GPUs {gpu_cap}, DRA GPUs {dra_cap}", file=sys.stderr)
    by_kind = {}
    total = 0
    gang_pods = 0
    dra_pods = dra_gpus = 0
    for o in work:
        n, _, _, gang, _, dra = pods_of(o)
        by_kind[o["kind"]] = by_kind.get(o["kind"], 0) + n
        total += n
        gang_pods += n if gang else 0
        dra_pods += n if dra else 0
        dra_gpus += n * dra
    print(f"pods: {total} {by_kind}, of which in pod groups: {gang_pods}; PodGroups: {apis}", file=sys.stderr)
    print(f"DRA pods: {dra_pods}, claiming {dra_gpus} GPUs in all", file=sys.stderr)
    h100_cap = 8 * sum(1 for n in gpu_nodes if n["metadata"]["labels"][PRODUCT] == "H100")
    print("t      cpu-demand  gpu-demand  h100-only  dra-gpus (as if every pod started on arrival)", file=sys.stderr)
    for t in range(0, SPAN_S, 900):
        cpu = gpu = h100 = dra_gpu = 0.0
        for o in work:
            a = arrival_of(o)
            d = o["metadata"]["annotations"].get(DURATION)
            end = a + sum(int(x) * {"h": 3600, "m": 60, "s": 1}[u] for x, u in re.findall(r"(\d+)([hms])", d)) if d else SPAN_S
            if a <= t < end:
                n, c, g, _, only_h100, dra = pods_of(o)
                if g:
                    gpu += n * g
                    h100 += n * g if only_h100 else 0
                elif dra:
                    dra_gpu += n * dra
                else:
                    cpu += n * c
        print(f"{t / 3600:4.1f}h  {cpu / cpu_cap:9.0%}  {gpu / gpu_cap:9.0%}  {h100 / h100_cap:9.0%}  "
              f"{dra_gpu / dra_cap:9.0%}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--stats", action="store_true")
    args = parser.parse_args()
    rng = Rng(args.seed)
    header = ("# Generated by generate.py (seed {seed}); edit the script and re-run it rather than this file.\n"
              "# {what}\n")
    cluster_objs = cluster_setup() + cluster() + dra_cluster()
    work = workload(rng)
    files = {
        "cluster.yaml": (header.format(seed=args.seed, what="320 nodes in 2 zones x 10 racks of 16: 60% CPU, "
                                       "40% 8-GPU (A100/H100, tainted), 2 cordoned; priority classes, namespaces.\n"
                                       f"# DRA: one more rack of {DRA_NODES} H100 nodes ({DRA_RACK}, tainted) whose "
                                       f"{DRA_DEVICES} GPUs and {DRA_DEVICES} RDMA NICs are in ResourceSlices; "
                                       "their DeviceClasses."),
                         cluster_objs),
        "workload.yaml": (header.format(seed=args.seed, what=f"{HOURS} virtual hours of services, batch jobs, GPU "
                                        "training (gangs: PodGroups of both APIs; DRA GPU+NIC claims) and inference; timing in "
                                        "tessera.io/arrival and tessera.io/duration."),
                          work),
    }
    sizes = {}
    for name, (head, objs) in files.items():
        text = head + "".join(document(o) for o in objs)
        with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        sizes[name] = len(text.encode())
    if args.stats:
        stats(cluster_objs, work, sizes)


if __name__ == "__main__":
    main()
