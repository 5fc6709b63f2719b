"""ArchiveWorkQueue: the keys of the recordings a sweep found due, for ArchiveWorkFunction.

A message is the item's key and nothing else (`{"SessionUUID": ..., "SequenceNumber": n}`): no
URL, no phone number. The consumer reads the item itself (GetItem), so a message never carries
state that could be stale, and a duplicate message is harmless (the archiver's claim and the
create-only put make archiving exactly-once whatever the queue delivers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.models import item as f
from recording_archive.models.archive import WorkKey

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SendMessageBatch takes at most 10 entries:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
BATCH_ENTRIES = 10
# Tries of the entries of one batch that SQS refused or that a failed call left unsent (the
# client has already retried the call itself, QUEUE budget); a short pause between them.
SEND_TRIES = 3
_PAUSE_SECONDS = 0.2


def encode_key(key: WorkKey) -> str:
    return json.dumps(
        {f.SESSION_UUID: key.session_uuid, f.SEQUENCE_NUMBER: key.sequence_number},
        separators=(",", ":"),
    )


def decode_key(body: str) -> WorkKey:
    """The key a message carries; ValueError if it is not one of ours."""
    data = json.loads(body)
    if not isinstance(data, dict) or set(data) != {f.SESSION_UUID, f.SEQUENCE_NUMBER}:
        raise ValueError("not an archive work message")
    session, seq = data[f.SESSION_UUID], data[f.SEQUENCE_NUMBER]
    if not isinstance(session, str) or not session or type(seq) is not int or seq < 0:
        raise ValueError("archive work message with an invalid key")
    return WorkKey(session, seq)


class ArchiveWorkQueue:
    """The queue, its client made by `client()` at the first send."""

    def __init__(
        self,
        client: Callable[[], SQSClient],
        queue_url: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._url = queue_url
        self._sleep = sleep

    def send(self, keys: Sequence[WorkKey]) -> list[WorkKey]:
        """Send the keys, 10 per SendMessageBatch; the entries SQS refuses (or that a failed call
        leaves unsent) are sent again, up to SEND_TRIES in all. Returns the keys never sent."""
        unsent: list[WorkKey] = []
        for start in range(0, len(keys), BATCH_ENTRIES):
            unsent += self._send_batch(list(keys[start : start + BATCH_ENTRIES]))
        return unsent

    def _send_batch(self, batch: list[WorkKey]) -> list[WorkKey]:
        pending, refused = batch, []
        for attempt in range(SEND_TRIES):
            if attempt:
                self._sleep(_PAUSE_SECONDS * attempt)
            entries: list[Any] = [
                {"Id": str(i), "MessageBody": encode_key(key)} for i, key in enumerate(pending)
            ]
            try:
                resp = self._client().send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError):
                continue  # the whole batch again
            # A batch call succeeds as a whole with a result per entry: the failed entries are
            # listed in `Failed`; SenderFault marks one SQS will never take (not sent again).
            failed = resp.get("Failed", [])
            refused += [pending[int(e["Id"])] for e in failed if e.get("SenderFault")]
            pending = [pending[int(e["Id"])] for e in failed if not e.get("SenderFault")]
            if not pending:
                break
        return refused + pending
