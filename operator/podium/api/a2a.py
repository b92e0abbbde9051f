"""A2A (Agent2Agent protocol) in the Agent kind: serving an Agent as an A2A agent (`spec.a2a`) and an Agent whose
work is done by a remote A2A agent (`spec.backend.a2a`). The agent runtime implements both with the official A2A
SDK (`pip install 'podium[a2a]'`); docs/a2a.md."""

from __future__ import annotations

from pydantic import Field

from podium.api.common import Model, Rule

# The agent container's probe and metrics port (the operator's children builder uses the same number): the A2A
# server needs a port of its own.
ADMIN_PORT = 8080
DEFAULT_A2A_PORT = 8081


class A2AServer(Model):
    """Serves this Agent as an A2A agent: each replica answers the A2A protocol (agent card at
    `/.well-known/agent-card.json`, JSON-RPC at `/`, HTTP+JSON at `/rest`; message send and stream) on its own
    port, which the Agent's Service exposes as port `a2a`. A message becomes a task of kind `execute` (or the kind
    named in the message metadata `podium.kind`) in the Agent's inbox, so any replica may run it; its result is
    the answer, and a streaming client sees it as task status updates (submitted, working, then completed or
    failed). The A2A port has no authentication of its own: reach it only from where you trust, e.g. with the
    chart's NetworkPolicies (networkPolicy.a2a.from)."""

    enabled: bool = False
    """True: serve A2A. False: no A2A server and no `a2a` Service port."""
    port: int = Field(default=DEFAULT_A2A_PORT, ge=1024, le=65535)
    """Container and Service port of the A2A server; must differ from 8080, the probe and metrics port."""
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    """Base URL that clients should use, published in the agent card, e.g. an Ingress in front of the Service.
    Unset: the card names the URL it was fetched by (the Service's DNS name or address, a port-forward), so the
    client calls back the way it came."""
    timeout_seconds: int = Field(default=300, ge=1, le=86400)
    """How long one A2A message waits for its task's result, queueing included, in seconds. Past it the A2A task
    fails with a message saying so; the Podium task stays in the inbox and still runs, but its result no longer
    reaches this client."""

    rules = (
        Rule(
            cel=f"!has(self.port) || self.port != {ADMIN_PORT}",
            message=f"a2a.port must not be {ADMIN_PORT}: the agent's probe and metrics server uses it",
            check=lambda m: m.port != ADMIN_PORT,
        ),
    )


class A2ABackend(Model):
    """Delegates each task to a remote A2A agent (another platform's agent, or a Podium Agent with spec.a2a):
    the agent card is read from `<url>/.well-known/agent-card.json` and the task goes as one A2A message through
    the transport the card offers (JSON-RPC or HTTP+JSON). A string input is sent as a text part, anything else as
    a data part when the card accepts `application/json` (else as JSON text); the task's kind, id and orchestration
    travel in the message metadata under `podium`. The answer's artifacts (or its reply message) are the output:
    the data of a data part, else the text, parsed as JSON when it is JSON. A task that ends failed, rejected or
    canceled, or asks for input or authentication, fails the attempt with the remote agent's message."""

    url: str = Field(pattern=r"^https?://", max_length=2048)
    """Base URL of the remote agent, where its agent card is served, e.g. `http://reviewer.team.svc:8081`."""
    headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request (card and messages), e.g. an Authorization header."""
    streaming: bool = True
    """True: use message streaming when the card says the agent supports it (the task's progress arrives as
    events, and a long task needs no open request timeout of its own). False: one blocking message send."""
    timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    """Upper limit in seconds for one task on the remote agent; the task's own timeout
    (resilience.timeoutSeconds) applies when it is lower. Unset: only the task's timeout applies."""
