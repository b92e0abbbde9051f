"""End-to-end tests run on the same local cluster as tests/cluster: reuse its session fixtures."""

try:  # tests/ as one package (tests/__init__.py) ...
    from tests.cluster.conftest import ClusterHandle, cluster
except ModuleNotFoundError:  # ... or each tier as its own top-level package
    from cluster.conftest import ClusterHandle, cluster  # type: ignore[no-redef]

__all__ = ["ClusterHandle", "cluster"]
