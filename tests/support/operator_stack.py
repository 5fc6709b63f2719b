"""The operator commands' test harness: the local stack's resources in moto, callbacks signed
like Plivo through the real CallbackFunction handler, archiving through the real SweeperFunction
handler, media from a scripted loopback server, a fake Plivo REST API, and the commands run
through `recording_archive_cli.main.main` exactly as on the command line."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import boto3
import pytest

from recording_archive.handlers import wiring
from recording_archive_cli.local.resources import DEFAULT_AUTH_ID, LocalResources
from recording_archive_cli.main import main
from recording_archive_cli.plivo_sim import session_callbacks
from tests.support.archive_work import sweep_and_archive
from tests.support.callback_flow import post_signed_callback
from tests.support.fake_plivo_api import FakePlivoApi
from tests.support.media_server import MediaServer, wav_body
from tests.support.moto_resources import TOKEN


class Stack:
    def __init__(
        self,
        res: LocalResources,
        function_env: Any,
        media: MediaServer,
        plivo: FakePlivoApi,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.res = res
        self.function_env = function_env
        self.media = media
        self.plivo = plivo
        self.capsys = capsys
        self.ddb = boto3.client("dynamodb", endpoint_url=res.endpoint_url)
        self.s3 = boto3.client("s3", endpoint_url=res.endpoint_url)

    def post(self, params: dict[str, str]) -> int:
        self.function_env("CallbackFunction", MEDIA_ALLOW_LOOPBACK="true")
        return post_signed_callback(params, TOKEN)

    def session(
        self,
        *,
        drop: tuple[str, ...] = (),
        media_url: str | None = None,
        from_number: str | None = None,
    ) -> tuple[str, str, bytes]:
        """One simulated recorded session: Plivo holds it; the callbacks in `drop` never came;
        `from_number` replaces the simulated caller's number."""
        rec = str(uuid.uuid4())
        body = wav_body(0.2 + len(self.media.requests) * 0.01)
        path = f"/v1/Account/{DEFAULT_AUTH_ID}/Recording/{rec}.wav"
        self.media.add(path, body, content_type="audio/wav")
        url = media_url or self.media.url(path)
        callbacks = session_callbacks(auth_id=DEFAULT_AUTH_ID, media_url=url, recording_uuid=rec)
        session_uuid = callbacks[0].session_uuid
        for cb in callbacks:
            if cb.event_name not in drop:
                params = {**cb.params, **({"From": from_number} if from_number else {})}
                assert self.post(params) == 200
        fake = self.plivo.add_session(session_uuid=session_uuid)
        self.plivo.add_recording(fake, url, recording_id=rec, fmt="wav")
        return session_uuid, rec, body.data

    def sweep(self) -> dict[str, int]:
        """A sweep and the work it enqueued (tests/support/archive_work.py)."""
        for fn in ("SweeperFunction", "ArchiveWorkFunction"):
            self.function_env(
                fn,
                MEDIA_ALLOW_LOOPBACK="true",
                MEDIA_RETRY_BUDGET_SECONDS="0.2",
                SWEEP_GRACE_SECONDS="0",
            )
        wiring.reset()
        return sweep_and_archive()

    def cli(self, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = [*argv, "--endpoint-url", self.res.endpoint_url]
        if argv[0] in ("reconcile", "purge-source"):
            args += ["--plivo-api-url", self.plivo.base_url]
        if stdin is not None:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr("sys.stdin", io.StringIO(stdin))
                rc = main(args)
        else:
            rc = main(args)
        out, err = self.capsys.readouterr()
        return rc, out, err

    def cli_json(self, *argv: str) -> tuple[int, Any]:
        rc, out, _ = self.cli(*argv, "--json")
        return rc, json.loads(out)

    def items(self) -> list[dict[str, Any]]:
        return self.ddb.scan(TableName=self.res.table_name, ConsistentRead=True)["Items"]

    def item(self, session: str, seq: int) -> dict[str, Any]:
        key = {"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}}
        return self.ddb.get_item(TableName=self.res.table_name, Key=key, ConsistentRead=True)[
            "Item"
        ]

    def update(self, session: str, seq: int, **values: str) -> None:
        key = {"SessionUUID": {"S": session}, "SequenceNumber": {"N": str(seq)}}
        names = {f"#{k}": k for k in values}
        self.ddb.update_item(
            TableName=self.res.table_name,
            Key=key,
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{k}": {"S": v} for k, v in values.items()},
        )

    def versions(self) -> list[dict[str, Any]]:
        return self.s3.list_object_versions(Bucket=self.res.bucket_name).get("Versions", [])


def deployed_stack(res: LocalResources, name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack in moto with just these outputs: what `--stack NAME` reads."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    cfn = boto3.client("cloudformation", endpoint_url=res.endpoint_url)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
