"""The gpu_cluster fact (gpunode_gpu_cluster) the Kubernetes builders' tests start from: the role's defaults."""

CLUSTER = {
    "namespace": "nvidia-gpu", "registry": "", "image_pull_secrets": [], "runtime_class": "nvidia",
    "runtime_class_handler": "nvidia", "use_runtime_class": True,
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priority_class": "system-node-critical", "node_selection": "either", "max_unavailable": 1, "labels": {},
    "cdi_enabled": False, "mig_enabled": False,
}
