"""handlers/http_api_event.py reads an HTTP API event as Powertools' APIGatewayProxyEventV2 does.

The callback reads its event through its own small view (the data classes package's import is a
tenth of the cold-start floor); these tests hold the two to the same answers on API Gateway's
documented event (tests/events/http_api_proxy.json) and its variants.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from recording_archive.handlers.http_api_event import HttpApiEvent

EVENT = json.loads((Path(__file__).parents[1] / "events" / "http_api_proxy.json").read_text())


def _variant(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = event
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return event


VARIANTS = {
    "documented": EVENT,
    "named stage": _variant(rawPath="/prod/callbacks/recording", requestContext__stage="prod"),
    "get, no body": _variant(requestContext__http__method="GET", body=None, isBase64Encoded=None),
    "plain body": _variant(body="a=1&b=2", isBase64Encoded=False),
    "no headers, empty query": _variant(headers=None, rawQueryString=""),
    "lower-case method": _variant(requestContext__http__method="post"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_view_reads_what_powertools_reads(name: str) -> None:
    raw = VARIANTS[name]
    ours, theirs = HttpApiEvent(raw), APIGatewayProxyEventV2(raw)
    assert ours.path == theirs.path
    assert ours.raw_path == theirs.raw_path
    assert ours.method == theirs.request_context.http.method.upper()
    assert ours.stage == (theirs.request_context.stage or "$default")
    assert ours.domain_name == (theirs.request_context.domain_name or "")
    assert ours.api_id == theirs.request_context.api_id
    assert ours.raw_query_string == (theirs.raw_query_string or "")
    assert ours.headers == {k.lower(): v for k, v in (theirs.get("headers") or {}).items()}
    assert ours.body == (theirs.get("body") or "")
    assert ours.is_base64_encoded == bool(theirs.get("isBase64Encoded"))


def test_a_named_stage_is_stripped_only_as_a_whole_path_segment() -> None:
    # Powertools strips len("/" + stage) characters whatever the path; the view strips the
    # stage only when the path starts with it, so "/prodx/..." is never mangled into a route.
    raw = _variant(rawPath="/prodx/callbacks/recording", requestContext__stage="prod")
    assert HttpApiEvent(raw).path == "/prodx/callbacks/recording"
    assert HttpApiEvent(_variant(rawPath="/prod", requestContext__stage="prod")).path == "/prod"


def test_an_event_without_request_context_reads_as_empty() -> None:
    # Powertools raises KeyError on a missing rawQueryString; API Gateway always sends it, but a
    # malformed invocation is answered 404 rather than failing the function.
    event = HttpApiEvent({})
    assert (event.method, event.path, event.stage, event.headers) == ("", "", "$default", {})
    assert (event.raw_query_string, event.body, event.is_base64_encoded) == ("", "", False)
