"""The media download's settings: size and time limits, and the extra CA bundle that only the
local stack may give (`MEDIA_CA_BUNDLE`, `recording-archive local --media-ca-bundle`)."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from recording_archive.config import ArchiveSettings, ArchiveWorkSettings
from recording_archive.handlers.wiring import media_policy
from recording_archive_cli.local.stack import (
    ARCHIVE_ID,
    ARCHIVE_WORK_ID,
    CALLBACK_ID,
    DRAIN_ID,
    FUNCTIONS,
    SWEEPER_ID,
    local_overrides,
)
from recording_archive_cli.local.template import load_template
from recording_archive_cli.local.tls import MediaTrust, ca_bundle_file
from recording_archive_cli.main import build_parser
from tests.support.tls import LocalCA

REQUIRED = {
    "events_table_name": "events",
    "archive_bucket_name": "bucket",
    "archive_kms_key_id": "alias/key",
    "archive_bucket_owner": "123456789012",
    "auth_secret_id": "secret",
    "event_bus_name": "default",
}
MiB = 1024 * 1024


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    return LocalCA().pem_file(tmp_path)


def test_limits_have_documented_defaults_and_reach_the_policy() -> None:
    settings = ArchiveSettings.model_validate(REQUIRED)
    assert settings.media_total_timeout_seconds == 600
    assert settings.media_max_size_mib == 2048
    assert settings.media_ca_bundle == ""
    policy = media_policy(settings)
    assert (policy.max_seconds, policy.max_bytes, policy.ca_bundle) == (600, 2048 * MiB, None)
    tuned = ArchiveSettings.model_validate(
        REQUIRED | {"media_total_timeout_seconds": "90", "media_max_size_mib": "64"}
    )
    assert (media_policy(tuned).max_seconds, media_policy(tuned).max_bytes) == (90, 64 * MiB)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("media_total_timeout_seconds", "0"),
        ("media_total_timeout_seconds", "900"),  # would outlive the function's Timeout
        ("media_max_size_mib", "0"),
    ],
)
def test_limits_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        ArchiveSettings.model_validate(REQUIRED | {name: value})


def test_ca_bundle_is_refused_outside_loopback_mode(pem: Path) -> None:
    for cls in (ArchiveSettings, ArchiveWorkSettings):
        with pytest.raises(ValidationError, match="MEDIA_CA_BUNDLE is for the local stack only"):
            cls.model_validate(REQUIRED | {"media_ca_bundle": str(pem)})


def test_ca_bundle_must_be_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="readable PEM file"):
        ArchiveSettings.model_validate(
            REQUIRED
            | {"media_allow_loopback": "true", "media_ca_bundle": str(tmp_path / "nope.pem")}
        )


def test_ca_bundle_in_loopback_mode_reaches_the_policy(pem: Path) -> None:
    settings = ArchiveWorkSettings.model_validate(
        REQUIRED | {"media_allow_loopback": "true", "media_ca_bundle": str(pem)}
    )
    assert media_policy(settings).ca_bundle == str(pem)


def test_the_template_never_sets_the_ca_bundle() -> None:
    resources = load_template()["Resources"]
    for name, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::Function":
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert "MEDIA_CA_BUNDLE" not in variables, name
            assert "MEDIA_ALLOW_LOOPBACK" not in variables, name
    globals_env = load_template().get("Globals", {}).get("Function", {}).get("Environment", {})
    assert "MEDIA_CA_BUNDLE" not in globals_env.get("Variables", {})


# --- the CLI option ----------------------------------------------------------------------------
def test_option_takes_a_pem_file_of_ca_certificates(pem: Path, tmp_path: Path) -> None:
    assert ca_bundle_file(str(pem)) == pem.resolve()
    junk, empty, leaf = tmp_path / "junk.pem", tmp_path / "empty.pem", tmp_path / "leaf.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    empty.write_text("# nothing here\n")
    LocalCA().ca.issue_cert("media.localhost").cert_chain_pems[0].write_to_path(str(leaf))
    cases = {
        tmp_path / "missing.pem": "no such file",
        junk: "not a PEM file",
        empty: "not a PEM file",
        leaf: "no CA certificate",  # a server's certificate is not a trust anchor
    }
    for path, message in cases.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            ca_bundle_file(str(path))


def test_option_exists_on_local_only(pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["local", "--media-ca-bundle", str(pem)])
    assert args.media_ca_bundle == pem.resolve()
    assert build_parser().parse_args(["local"]).media_ca_bundle is None
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(
            [
                *("simulate", "--url", "http://127.0.0.1:1/", "--auth-token", "t"),
                *("--media-ca-bundle", str(pem)),
            ]
        )
    assert info.value.code == 2
    assert "unrecognized arguments: --media-ca-bundle" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "--media-ca-bundle", "/no/such.pem"])
    assert "no such file" in capsys.readouterr().err


def test_bundle_goes_to_the_downloading_functions_only(pem: Path) -> None:
    url = "http://127.0.0.1:3000/callbacks/recording"
    given = {fn: local_overrides(fn, url, media_ca_bundle=pem) for fn in FUNCTIONS}
    assert given[ARCHIVE_ID]["MEDIA_CA_BUNDLE"] == str(pem)
    assert given[ARCHIVE_WORK_ID]["MEDIA_CA_BUNDLE"] == str(pem)
    assert "MEDIA_CA_BUNDLE" not in given[SWEEPER_ID]  # it downloads nothing any more
    assert "MEDIA_CA_BUNDLE" not in given[CALLBACK_ID]
    assert "MEDIA_CA_BUNDLE" not in given[DRAIN_ID]
    # Always with loopback mode, which the functions require for it.
    assert given[ARCHIVE_ID]["MEDIA_ALLOW_LOOPBACK"] == "true"
    assert given[ARCHIVE_WORK_ID]["MEDIA_ALLOW_LOOPBACK"] == "true"
    assert all("MEDIA_CA_BUNDLE" not in local_overrides(fn, url) for fn in FUNCTIONS)


def test_trust_combines_the_given_bundle_and_the_demo_ca(pem: Path) -> None:
    assert MediaTrust.prepare(None, demo=False).bundle is None
    trust = MediaTrust.prepare(pem, demo=True)
    try:
        assert trust.bundle is not None
        store = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        store.load_verify_locations(cafile=str(trust.bundle))
        assert len(store.get_ca_certs()) == 2  # the user's CA and the demo's
        assert trust.demo_server_context() is not None
    finally:
        trust.cleanup()
    assert not trust.bundle.exists()
    only_given = MediaTrust.prepare(pem, demo=False)
    try:
        assert only_given.demo_server_context() is None
        assert only_given.bundle is not None
        assert only_given.bundle.read_bytes().strip() == pem.read_bytes().strip()
    finally:
        only_given.cleanup()
