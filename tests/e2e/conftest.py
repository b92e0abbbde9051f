"""End-to-end tests run on the same local cluster as tests/cluster: reuse its session fixtures."""

from cluster.conftest import ClusterHandle, cluster

__all__ = ["ClusterHandle", "cluster"]
