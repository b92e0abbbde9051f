"""An API server error in one line: what it refused and why, for Events and logs."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from podium.operator.kube import describe_error


def test_an_api_server_refusal_says_what_it_refused_not_the_http_headers() -> None:
    refused = ApiException(status=422, reason="Unprocessable Entity")
    said = 'Orchestration.podium.dev "r" is invalid: status.tasks[0].state: Unsupported value: "Cancelled"'
    refused.body = json.dumps({"kind": "Status", "message": said})
    refused.headers = {"Audit-Id": "abc"}
    assert describe_error(refused) == f"the API server answered 422 Unprocessable Entity: {said}"
    bare = ApiException(status=503, reason="Service Unavailable")
    assert describe_error(bare) == "the API server answered 503 Service Unavailable"
    assert describe_error(ConnectionError("refused")) == "ConnectionError: refused"
