"""`recording-archive local --env FUNCTION:NAME=VALUE`: per-function variables (fault injection)."""

from __future__ import annotations

import argparse

import pytest

from recording_archive_cli.commands.local import env_overrides, function_env_override


def test_parses_function_name_and_value() -> None:
    assert function_env_override("CallbackFunction:AWS_ENDPOINT_URL_DYNAMODB=http://h:1/x=y") == (
        "CallbackFunction",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "http://h:1/x=y",
    )
    assert function_env_override("SweeperFunction:SWEEP_GRACE_SECONDS=") == (
        "SweeperFunction",
        "SWEEP_GRACE_SECONDS",
        "",
    )


@pytest.mark.parametrize(
    "text",
    ["CallbackFunction", "CallbackFunction:NAME", "CallbackFunction:=1", "Nope:A=1", ":A=1"],
)
def test_refuses_malformed_or_unknown_function(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        function_env_override(text)


def test_overrides_grouped_by_function_last_wins() -> None:
    assert env_overrides(
        [
            ("ArchiveFunction", "A", "1"),
            ("ArchiveFunction", "A", "2"),
            ("SweeperFunction", "B", "3"),
        ]
    ) == {"ArchiveFunction": {"A": "2"}, "SweeperFunction": {"B": "3"}}
