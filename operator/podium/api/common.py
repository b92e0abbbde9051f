"""Building blocks shared by the Podium API models.

Validation rules that a schema alone cannot express are declared once, as :class:`Rule`: the CRD generator
emits each as a CEL ``x-kubernetes-validations`` entry (so the API server rejects bad specs) and the model runs
the same rule's Python check (so the operator and the CLI reject them with the same message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "podium.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# On Agents, Teams and Orchestrations: the operator cleans up what they leave outside Kubernetes (Redis users, a
# run's keys and queued tasks) before they go.
FINALIZER = f"{GROUP}/cleanup"

# Kubernetes object names: DNS-1123 subdomain (Agents, Teams) and label (stage/task names).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CAPABILITY_PATTERN = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"

# Bounded strings also keep the CEL rules' estimated cost within what the API server accepts.
AgentName = Annotated[str, Field(max_length=253, pattern=NAME_PATTERN)]
TaskName = Annotated[str, Field(max_length=63, pattern=LABEL_PATTERN)]
CapabilityName = Annotated[str, Field(min_length=1, max_length=63, pattern=CAPABILITY_PATTERN)]
RoleName = CapabilityName


def wire_name(field: str) -> str:
    """A field's camelCase name on the wire. A one-word name stays as it is: pydantic's ``to_camel`` would turn
    ``a2a`` into ``a2A``."""
    return to_camel(field) if "_" in field else field


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: ``cel`` for the API server, ``check`` for Python; one ``message`` for both."""

    cel: str
    message: str
    check: Callable[[Any], bool]


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, as in a structural CRD.

    Each field's docstring (the string literal under it) is its description in the CRD, which ``kubectl explain``
    shows; ``tests/unit/api/test_descriptions.py`` fails on any CRD field without one (docs/api.md).
    """

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
        use_attribute_docstrings=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        broken = [rule.message for rule in type(self).rules if not rule.check(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON form the API server stores (camelCase, unset optional fields left out)."""
        data: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return data


def exactly_one(*fields: str) -> Rule:
    """Rule: exactly one of ``fields`` (Python names) is set."""
    wire = [wire_name(f) for f in fields]
    return Rule(
        cel="[" + ", ".join(f"has(self.{w})" for w in wire) + "].filter(x, x).size() == 1",
        message=f"exactly one of {', '.join(wire)} must be set",
        check=lambda m: sum(getattr(m, f) is not None for f in fields) == 1,
    )


class SecretKeyRef(Model):
    """One key of a Secret in the Agent's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253)
    """Key in the Secret whose value is used."""


class Priority(StrEnum):
    """What losing this agent's work means for an orchestration:

    - `critical`: a step that no agent could finish fails the whole run, and so does one whose agents are all
      unavailable (reason AgentUnavailable, at once, before other work when the spec names the agent); a Team
      with a critical member that is not Ready or Busy is not Ready (reason CriticalMemberDown).
    - `important`: a lost or unavailable step degrades the run instead: it goes on without that piece (or with
      the next suitable agent) and ends marked degraded, except where a strategy needs every step (a pipeline
      stage fails the run unless it says onFailure: skip). A member that is down makes its Team Degraded.
    - `optional`: treated like important; it marks work the result can do without.
    """

    critical = "critical"
    important = "important"
    optional = "optional"


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """One aspect of the object's state, as the Kubernetes API conventions describe conditions."""

    type: str = Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Which aspect this condition is about, e.g. Ready or Degraded; at most one condition per type."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why the status is what it is, as one CamelCase word that tools and alerts can match on."""
    message: str = Field(default="", max_length=32768)
    """Details for people; may be empty."""
    last_transition_time: str
    """When the status last changed (RFC 3339). A new reason or message alone does not move it."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation of the spec this condition was computed for; older than the object's generation
    while a change has not been reconciled yet."""


class LabelSelectorRequirement(Model):
    """One requirement on an Agent's labels: a key, an operator and, for In and NotIn, values."""

    key: str
    """The label key the requirement is about."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """In: the label is present with one of values. NotIn: the label is absent or has none of values. Exists:
    the label is present, whatever its value. DoesNotExist: the label is absent."""
    values: list[str] | None = None
    """Label values for In and NotIn; ignored by Exists and DoesNotExist. In with no values matches nothing;
    NotIn with no values matches every Agent."""


class LabelSelector(Model):
    """Selects Agents by their labels, as Kubernetes label selectors do: an Agent matches when it has every
    matchLabels entry and meets every matchExpressions requirement. At least one of the two must be given."""

    match_labels: dict[str, str] | None = None
    """Labels an Agent must carry, each with exactly this value."""
    match_expressions: list[LabelSelectorRequirement] | None = None
    """Requirements an Agent's labels must all meet."""

    rules = (
        Rule(
            cel="has(self.matchLabels) || has(self.matchExpressions)",
            message="a selector needs matchLabels or matchExpressions",
            check=lambda m: bool(m.match_labels) or bool(m.match_expressions),
        ),
    )

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            inside = present and labels[req.key] in (req.values or [])
            if (
                (req.operator == "In" and not inside)
                or (req.operator == "NotIn" and inside)
                or (req.operator == "Exists" and not present)
                or (req.operator == "DoesNotExist" and present)
            ):
                return False
        return True

    def to_label_selector_string(self) -> str:
        """The ``key=value,key in (a,b)`` form the list APIs take."""
        parts = [f"{k}={v}" for k, v in sorted((self.match_labels or {}).items())]
        for req in self.match_expressions or []:
            values = ",".join(req.values or [])
            parts.append(
                {
                    "In": f"{req.key} in ({values})",
                    "NotIn": f"{req.key} notin ({values})",
                    "Exists": req.key,
                    "DoesNotExist": f"!{req.key}",
                }[req.operator]
            )
        return ",".join(parts)


class ObjectMeta(Model):
    """The part of metadata Podium reads; the rest is kept as the API server sent it."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Resource(Model):
    """Base of the three kinds: apiVersion, kind, metadata, spec, status."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["podium.dev/v1alpha1"] = "podium.dev/v1alpha1"
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


def unique_names(field: str, wire: str | None = None) -> Rule:
    """Items of the list `field` (python name; `wire` is its JSON name) must have distinct `.name`s.

    The CEL guards with has(): an omitted optional list is absent at the API server, not empty.
    """
    w = wire or field
    return Rule(
        cel=f"!has(self.{w}) || self.{w}.all(a, self.{w}.exists_one(b, b.name == a.name))",
        message=f"each of {w} needs a unique name",
        check=lambda m: len({i.name for i in getattr(m, field)}) == len(getattr(m, field)),
    )
