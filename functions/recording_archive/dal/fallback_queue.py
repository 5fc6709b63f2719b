"""FallbackQueue: where a verified event waits when the table cannot take it.

The message is the item exactly as it would have been written (DynamoDB's typed JSON), so the
drain function writes it with the same idempotent `put_new` and nothing is re-derived.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from recording_archive.dal.events_table import deserialize_item, serialize_item
from recording_archive.models.errors import FallbackUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MESSAGE_VERSION = 1


def encode_message(item: Mapping[str, Any]) -> str:
    return json.dumps(
        {"version": MESSAGE_VERSION, "item": serialize_item(item)}, separators=(",", ":")
    )


def decode_message(body: str) -> dict[str, Any]:
    """The item carried by a fallback message; ValueError if it is not one of ours."""
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("version") != MESSAGE_VERSION:
        raise ValueError("not a fallback message of a known version")
    typed = data.get("item")
    if not isinstance(typed, dict):
        raise ValueError("fallback message has no item")
    return deserialize_item(typed)


class FallbackQueue:
    """The queue, with its SQS client made by `client()` at the first send, not before.

    A normal callback never uses the queue, and creating an SQS client loads its service model
    (about 40 ms, measured by `make bench`): a cold start should not pay it for nothing. Pass a
    cached factory (`dal.aws.sqs_client`) so the client is still made once per environment.
    """

    def __init__(self, client: Callable[[], SQSClient], queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, item: Mapping[str, Any]) -> str:
        """Queue the item; return the message id. Raises FallbackUnavailableError."""
        try:
            resp = self._client().send_message(QueueUrl=self._url, MessageBody=encode_message(item))
        except (ClientError, BotoCoreError) as exc:
            raise FallbackUnavailableError("fallback queue send failed") from exc
        return resp["MessageId"]
