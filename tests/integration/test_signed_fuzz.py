"""Signed fuzzing of the real CallbackFunction handler against the template's resources in moto.

Every request is signed by Plivo's own SDK (`plivo.utils.signature_v3`), so none stops at the
signature check: the properties are about what happens after it (tests/support/signed_fuzz.py).
`make reliability` runs the same with thousands of cases (reliability/signed_fuzz.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from recording_archive.observability import SERVICE
from recording_archive_cli.local.resources import LocalResources
from tests.support import signed_fuzz as sf
from tests.support.moto_resources import TOKEN

EXAMPLES = 200  # about 15 s here; the reliability run tries thousands
NONCE = "12345678901234567890"


@pytest.fixture
def target(function_env: Any, resources: LocalResources) -> sf.HandlerTarget:
    function_env("CallbackFunction")
    return sf.HandlerTarget(
        resources.endpoint_url, resources.table_name, resources.fallback_queue_url, TOKEN
    )


@pytest.mark.slow
def test_signed_requests_of_any_shape_hold_every_property(target: sf.HandlerTarget) -> None:
    figures = sf.run(target, max_examples=EXAMPLES)
    result = figures.as_dict()
    assert figures.error is None, result["failures"]
    assert result["failures"] == []
    assert result["answers_5xx"] == result["lost"] == result["raw_value_mismatches"] == 0
    # The run reached every outcome it is about, not only the early refusals.
    assert figures.inputs >= EXAMPLES
    assert figures.stored_in_table > EXAMPLES // 4
    assert figures.stored_via_queue > 0 and figures.replays > 0
    outcomes = {"200", "400 malformed_body", "413 payload_too_large", "415 unsupported_media_type"}
    outcomes |= {f"422 {r}_key_attribute" for r in ("missing", "invalid", "repeated")}
    assert outcomes <= set(figures.expected)


def test_seed_cases_cover_every_documented_outcome() -> None:
    expected = [sf.build(spec).expected for spec in sf.SEED_SPECS]
    assert expected == [
        *[(200, "")] * 5,
        (422, "repeated_key_attribute"),
        (422, "missing_key_attribute"),
        (422, "invalid_key_attribute"),
        (415, "unsupported_media_type"),
        (413, "payload_too_large"),
        (200, ""),
        (400, "malformed_body"),
        (200, ""),
        (200, ""),
    ]


def _send(target: sf.HandlerTarget, spec: sf.Spec) -> tuple[sf.Built, list[str]]:
    built = sf.build(spec)
    figures = sf.Figures()
    return built, sf.check_case(target, built, figures, NONCE)


# --- the reproductions, as regressions -------------------------------------------------
# One resource set per test (creating it from the template is most of a test's time): each
# test loops over its cases, and a failure names the case.
def test_json_numbers_signed_by_the_sdk_are_stored(target: sf.HandlerTarget) -> None:
    """Was 403: the body was parsed with Decimal and the signature rendered the Decimal, not
    the float the SDK renders (`12.5`, `1e+16`, `100000.0`, `inf`)."""
    for literal in ["12.5", "12.50", "1e16", "1.0", "1E5", "-0.0", "1e400", "5e-324"]:
        extra = (("RecordingDuration", sf.Num(literal)), ("Size", sf.Num("10")))
        built, problems = _send(target, sf.base_spec("json", *extra))
        assert problems == [], literal
        [item] = target.items(built.session)
        stored = item["Payload"]["RecordingDuration"]
        assert Decimal(stored) == Decimal(literal), literal
        # Beyond DynamoDB's range (1E+400, 5E-324): kept as the number's exact text.
        assert isinstance(stored, Decimal) is (literal not in ("1e400", "5e-324")), literal


def test_timestamps_out_of_range_are_stored_raw_without_parsed_field(
    target: sf.HandlerTarget,
) -> None:
    """Was 500 (ValueError / OverflowError in parse_timestamp) and nothing stored."""
    for ts in [
        "2026-12-03 10:00:00 +2400",
        "0001-01-01 00:00:00 +0100",
        "9999-12-31 23:59:59 -0100",
    ]:
        for kind in ("form", "json", "get"):
            stamps = [
                (name, sf.Stamp(ts, None)) for name in ("EventTimestamp", "RecordingStartTime")
            ]
            built, problems = _send(target, sf.base_spec(kind, *stamps))
            assert problems == [], (ts, kind)
            [item] = target.items(built.session)
            assert "EventTime" not in item and "RecordingStartTime" not in item
            assert item["Payload"]["EventTimestamp"] == (ts if kind == "json" else [ts])


def test_repeated_unknown_attribute_is_kept_as_the_list_received(
    target: sf.HandlerTarget,
) -> None:
    """Was 422 and the event dropped."""
    for kind in ("form", "get"):
        built, problems = _send(target, sf.base_spec(kind, ("Custom", "a"), ("Custom", "b")))
        assert problems == [], kind
        [item] = target.items(built.session)
        assert item["Payload"]["Custom"] == ["a", "b"]


def test_repeated_key_attribute_is_refused_and_counted_in_emf(target: sf.HandlerTarget) -> None:
    for key in sf.KEYS:
        spec = sf.base_spec("form")
        other = sf.Session("upper") if key == "SessionUUID" else "9"
        spec.attrs.append((key, sf.Key(other, "valid")))
        built = sf.build(spec)
        assert built.expected == (422, "repeated_key_attribute")
        status, answer, printed = target.invoke(sf.signed_event(built, TOKEN, NONCE))
        assert (status, answer["error"], answer["fields"]) == (422, "invalid_callback", [key])
        # The EMF document CloudWatch reads: one CallbackRejected, dimensioned by its reason.
        [doc] = sf.emf_documents(printed)
        assert doc["CallbackRejected"] in ([1.0], 1.0)
        assert (doc["Reason"], doc["service"]) == ("repeated_key_attribute", SERVICE)
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "PlivoRecordingArchive"
        assert directive["Dimensions"] == [["service", "Reason"]]
        assert directive["Metrics"] == [{"Name": "CallbackRejected", "Unit": "Count"}]
        assert target.items(built.session) == []


def test_json_refusals_are_counted_by_reason(target: sf.HandlerTarget) -> None:
    from tests.support.http_events import http_event

    headers = {"Content-Type": sf.JSON, "X-Plivo-Signature-V3": "c2ln"}
    headers["X-Plivo-Signature-V3-Nonce"] = NONCE
    for body in ['{"a": NaN}', '{"a": "\\ud800"}', '{"": 1}', '{"a": {"": 1}}', "[]"]:
        status, answer, printed = target.invoke(http_event("POST", headers=headers, body=body))
        assert (status, answer["error"]) == (400, "malformed_body"), body
        counts = sf.metric_counts(sf.emf_documents(printed))
        assert counts == {("CallbackRejected", "malformed_body"): 1}, body


def test_json_numbers_dynamodb_cannot_hold_are_kept_as_exact_text(
    target: sf.HandlerTarget,
) -> None:
    huge = sf.Num("1" * 60)
    tiny = sf.Num("1e-131")
    built, problems = _send(
        target,
        sf.base_spec(
            "json", ("Big", huge), ("Tiny", tiny), ("Deep", {"x": [huge, True], "n": None})
        ),
    )
    assert problems == []
    [item] = target.items(built.session)
    assert item["Payload"]["Big"] == "1" * 60
    assert Decimal(item["Payload"]["Tiny"]) == Decimal("1e-131")
    assert item["Payload"]["Deep"] == {"x": ["1" * 60, True], "n": None}
    assert json.loads(item["RawBody"])["Big"] == int("1" * 60)


def test_body_of_exactly_64_kib_is_stored_and_one_byte_more_refused(
    target: sf.HandlerTarget,
) -> None:
    for kind in ("form", "json", "get"):
        spec = sf.base_spec(kind)
        spec.pad_to = sf.LIMIT
        built, problems = _send(target, spec)
        assert len(built.raw.encode()) == sf.LIMIT and problems == []
        assert built.expected == (200, "")
        spec.pad_to = sf.LIMIT + 1
        built, problems = _send(target, spec)
        assert built.expected == (413, "payload_too_large") and problems == []
