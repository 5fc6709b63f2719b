"""Reads the table's stream from moto and shapes records as Lambda's event source mapping does."""

from __future__ import annotations

from typing import Any

import boto3


def stream_records(endpoint_url: str, stream_arn: str) -> list[dict[str, Any]]:
    """Every record currently in the stream (all shards, from the trim horizon)."""
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint_url)
    desc = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    records: list[dict[str, Any]] = []
    for shard in desc["Shards"]:
        it = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            resp = streams.get_records(ShardIterator=it, Limit=1000)
            records.extend(resp["Records"])
            if not resp["Records"]:
                break
            it = resp.get("NextShardIterator")
    for record in records:
        record["eventSourceARN"] = stream_arn
        for key in ("ApproximateCreationDateTime",):
            value = record["dynamodb"].get(key)
            if value is not None and not isinstance(value, (int, float)):
                record["dynamodb"][key] = int(value.timestamp())
    return records
