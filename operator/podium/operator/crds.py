"""Whether the installed CRDs are the ones this operator was built with.

Helm installs a chart's crds/ once and never upgrades them. After a ``helm upgrade`` without ``kubectl apply
--server-side -f charts/podium/crds/`` the API server refuses what the new operator writes (a new task state, a new
status field), and runs retry their status patches. The generator stamps each CRD with its schema's fingerprint
(:data:`podium.api.crd.SCHEMA_ANNOTATION`); the operator compares at start and says so, loudly, if they differ.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from kubernetes.client.exceptions import ApiException

from podium.api.crd import KINDS, SCHEMA_ANNOTATION, crd
from podium.operator.kube import Kube

APPLY = "kubectl apply --server-side -f charts/podium/crds/"


@functools.cache
def expected() -> dict[str, str]:
    """Each CRD's name and the stamp this operator's models give it."""
    return {kind.name: crd(kind)["metadata"]["annotations"][SCHEMA_ANNOTATION] for kind in KINDS}


def outdated(installed: Mapping[str, str | None]) -> list[str]:
    """The CRDs whose installed stamp differs from this operator's (a CRD that could not be read is left out)."""
    return sorted(name for name, stamp in expected().items() if name in installed and installed[name] != stamp)


async def installed(kube: Kube) -> dict[str, str | None]:
    """The stamps of the installed CRDs; one the operator may not read (no RBAC for it) is left out."""
    found: dict[str, str | None] = {}
    for name in (kind.name for kind in KINDS):
        try:
            body = await kube.run(kube.read, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        except ApiException as e:
            if e.status == 404:
                found[name] = None
            elif e.status != 403:
                raise
            continue
        found[name] = ((body.get("metadata") or {}).get("annotations") or {}).get(SCHEMA_ANNOTATION)
    return found
