"""A bounded run of `make reliability` against `recording-archive local`: a few hundred
callbacks (one recording uploaded in parts among them), the table refusing and stalling writes,
table writes applied whose answers are lost, media faults, a worker killed mid-upload, a stream
batch with one failing record, schemathesis."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from reliability import faults, hostile, load
from reliability.logscan import Secrets, scan
from reliability.stack import Stack, running_stack
from tests.support.media_server import MediaServer
from tests.support.net import free_port
from tests.support.tcp_proxy import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[Stack, FaultProxy]]:
    aws_port = free_port()
    proxy = FaultProxy(aws_port).start()
    try:
        with running_stack(*faults.fault_stack_args(proxy.url), aws_port=aws_port) as stack:
            yield stack, proxy
    finally:
        proxy.stop()


def test_load_every_event_stored_every_recording_archived_once(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, _ = proxied
    # One recording of 12-40 MiB (PART_SIZE_MIB 5 here): a multipart upload among the others.
    plan = load.plan_load(
        sessions=40, calls=3, media_base=media.base_url, large_share=0.01, seed=11
    )
    plan.archive_timeout = 120
    figures, secrets = load.run_load(stack, media, plan)
    assert figures["unique_events"] >= 200
    assert figures["duplicates_sent"] > 0
    assert figures["answers_5xx"] == 0, figures["status_counts"]
    assert figures["events_stored_equal_unique_sent"]
    assert figures["archived_exactly_once"] == figures["recordings"], figures["problems"]
    assert figures["object_versions"] == figures["recordings"]
    assert figures["incomplete_multipart_uploads"] == 0
    assert figures["multipart_recordings"] == 1
    assert figures["multipart_archived_exactly_once"] == figures["multipart_objects"] == 1
    assert load.load_passed(figures)
    assert scan(stack.lines(), secrets).leaks == []


def test_table_refusing_writes_sends_callbacks_to_the_fallback_queue_then_the_table(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, proxy = proxied
    secrets = Secrets(tokens={stack.token})
    figures = faults.table_outage(
        faults.Rig(stack, proxy, media, random.Random(3), secrets), per_phase=4, stalled=1
    )
    assert figures["answers_5xx"] == 0
    assert figures["queued_to_fallback"] >= 5  # refused and stalled writes
    assert figures["answers"].get("stall:queued", 0) >= 1, figures["answers"]
    assert figures["lost_events"] == 0
    assert figures["stored_via_fallback_drain"] == figures["queued_to_fallback"]
    assert figures["recordings_archived"] == figures["recordings"], figures["unarchived"]
    assert proxy.mode == "pass"


def test_stream_batch_with_one_failing_record_reports_only_it(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, proxy = proxied
    figures = faults.partial_batch(faults.Rig(stack, proxy, media, random.Random(5), Secrets()))
    assert figures["stream_gave_up_before_the_batch"]
    assert figures["only_the_failing_record_reported"], figures["batch_item_failures"]
    assert figures["others_archived_once"]
    assert figures["downloads_of_the_others_in_this_batch"] == [1, 1, 1]


def test_media_faults_end_archived_once_or_failed_with_the_alarm_metric(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, proxy = proxied
    figures = faults.media_faults(faults.Rig(stack, proxy, media, random.Random(9), Secrets()))
    outcomes = figures["outcomes"]
    assert outcomes.pop("404 for ever") == "FAILED, no object"
    assert set(outcomes.values()) == {"archived once"}, outcomes
    assert len(outcomes) == len(faults.MEDIA_FAULTS) - 1
    assert figures["stream_gave_up_to_on_failure_queue"]
    assert figures["recordings_failed_metric"] >= 1
    assert figures["incomplete_multipart_uploads"] == 0
    assert figures["partial_objects"] == 0


def test_worker_killed_mid_upload_is_archived_once_by_the_sweeper(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, proxy = proxied
    figures = faults.kill_mid_upload(
        faults.Rig(stack, proxy, media, random.Random(13), Secrets()), size_mib=24
    )
    assert figures["upload_in_progress_when_killed"]
    assert figures["worker_pids_killed"] >= 1
    assert figures["status_after_kill"] == "PENDING"
    assert figures["sweep"].get("archived") == 1, figures["sweep"]
    assert figures["outcome"] == "archived once by the sweeper"


def test_table_write_applied_but_its_answer_lost_is_a_duplicate_never_a_conflict(
    proxied: tuple[Stack, FaultProxy], media: MediaServer
) -> None:
    stack, proxy = proxied
    figures = faults.lost_answers(
        faults.Rig(stack, proxy, media, random.Random(17), Secrets()), count=3, all_lost=1
    )
    assert figures["callbacks"] >= 4
    assert figures["callbacks_whose_answer_was_lost"] == figures["callbacks"]  # fault applied
    assert figures["answers_200"] == figures["callbacks"], figures["answers"]
    [(attempts, _)] = figures["sdk_attempts_per_put"].items()  # one client: one count
    # With SDK retries, each first-answer-lost callback's retry meets its item ("duplicate");
    # with one attempt per write (dal/aws.py), it is "queued" and the drain's write meets it.
    expected_duplicates = figures["callbacks"] - 1 if int(attempts) > 1 else 0
    assert figures["duplicates"] == expected_duplicates, figures["answers"]
    if expected_duplicates:  # this stack's client has its retry quota: every retry was made
        assert figures["first_answer_lost_by_sdk_retry"] == {"retried:duplicate": 3}
    assert figures["queued"] == figures["drained_as_duplicate"]
    assert figures["queued"] == figures["callbacks"] - expected_duplicates
    assert figures["drained_as_stored"] == 0
    assert (figures["conflicts"], figures["conflict_metrics"], figures["answers_5xx"]) == (0, 0, 0)
    assert figures["stored_exactly_once"] == figures["callbacks"]
    assert figures["recordings_archived_once"] == figures["recordings"] >= 2
    assert faults.lost_answers_passed(figures)
    assert proxy.answers_to_lose == 0


def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(
    proxied: tuple[Stack, FaultProxy],
) -> None:
    stack, _ = proxied
    secrets = Secrets(tokens={stack.token})
    figures = hostile.schemathesis_suite(stack, max_examples=10, secrets=secrets)
    assert figures["inputs_tried"] >= 30
    assert figures["answers_5xx"] == 0
    assert figures["writes_from_rejected_requests"] == 0
    assert figures["failures"] == []
