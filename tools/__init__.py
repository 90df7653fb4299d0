"""Tools the agents can touch, one sub-package per family (metrics, logs, kube, gitops, cache)."""
