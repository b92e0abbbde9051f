"""CustomResourceDefinitions for the three kinds, built from the models (the single source of truth)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from podium.api.agent import Agent
from podium.api.common import GROUP, VERSION, Resource
from podium.api.orchestration import Orchestration
from podium.api.schema import Schema, model_schema, models_in, prose
from podium.api.team import Team

# The fields every Kubernetes object has, described as the built-in kinds describe them. The API server refuses
# anything but name/generateName restrictions under metadata and publishes its own ObjectMeta (described) there.
OBJECT_FIELDS: dict[str, Schema] = {
    "apiVersion": {
        "type": "string",
        "description": "The versioned schema of this representation of an object: podium.dev/v1alpha1.",
    },
    "kind": {
        "type": "string",
        "description": "The REST resource this object represents, in CamelCase.",
    },
    "metadata": {"type": "object"},
}


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    resource: type[Resource]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    scale: bool = False
    extra_subresources: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.resource.model_fields["kind"].default)

    @property
    def spec(self) -> type[BaseModel]:
        return self._model("spec")

    @property
    def status(self) -> type[BaseModel]:
        return self._model("status")

    def _model(self, name: str) -> type[BaseModel]:
        (model,) = models_in(self.resource.model_fields[name].annotation)
        return model

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{self.plural}.yaml"


KINDS: tuple[Kind, ...] = (
    Kind(
        resource=Agent,
        plural="agents",
        short_names=("ag",),
        scale=True,
        columns=(
            Column("Role", ".spec.role"),
            Column("Ready", ".status.ready", description="ready replicas / replicas"),
            Column("Phase", ".status.phase"),
            Column("Load", ".status.load", "number"),
            Column("Breaker", ".status.breaker.state"),
            Column("Priority", ".spec.priority", priority=1),
            AGE,
        ),
    ),
    Kind(
        resource=Team,
        plural="teams",
        short_names=("tm",),
        columns=(
            Column("Ready", ".status.ready", description="ready members / members"),
            Column("Degraded", ".status.degraded", "boolean"),
            Column("Lead", ".spec.lead", priority=1),
            AGE,
        ),
    ),
    Kind(
        resource=Orchestration,
        plural="orchestrations",
        short_names=("orch",),
        columns=(
            Column("Strategy", ".spec.strategy"),
            Column("Phase", ".status.phase"),
            Column("Progress", ".status.progress"),
            Column("Tokens", ".status.tokens", "integer", priority=1),
            Column("Cost", ".status.cost", "number", priority=1),
            Column("Team", ".spec.team", priority=1),
            AGE,
            # Last: what the run waits for, why it failed (`kubectl get orch -o wide`).
            Column("Message", ".status.message", priority=1),
        ),
    ),
)


def _status_schema(model: type[BaseModel]) -> Schema:
    schema = model_schema(model)
    conditions = schema["properties"].get("conditions")
    if conditions is not None:
        # Conditions are a map keyed by type, so server-side apply merges them per condition.
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


# The CRD's schema fingerprint, so an operator can tell CRDs older than itself (Helm never upgrades a chart's crds/).
SCHEMA_ANNOTATION = f"{GROUP}/schema"


def schema_stamp(spec: dict[str, Any]) -> str:
    """A short fingerprint of a CRD's spec (names, columns, schema): changes with any of them."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def crd(kind: Kind) -> dict[str, Any]:
    spec = _crd_spec(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.name,
            "labels": {"app.kubernetes.io/part-of": "podium"},
            "annotations": {SCHEMA_ANNOTATION: schema_stamp(spec)},
        },
        "spec": spec,
    }


def _crd_spec(kind: Kind) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": kind.kind,
            "listKind": f"{kind.kind}List",
            "plural": kind.plural,
            "singular": kind.kind.lower(),
            "shortNames": list(kind.short_names),
            "categories": ["podium"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": subresources,
                "additionalPrinterColumns": [c.to_wire() for c in kind.columns],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": prose(kind.resource.__doc__ or kind.kind),
                        "required": ["spec"],
                        "properties": {
                            **copy.deepcopy(OBJECT_FIELDS),
                            "spec": model_schema(kind.spec),
                            "status": _status_schema(kind.status),
                        },
                    }
                },
            }
        ],
    }
