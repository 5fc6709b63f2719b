"""CallbackFunction: Plivo recording callbacks, verified and stored durably.

Trigger: API Gateway HTTP API (payload format 2.0), `POST` and `GET /callbacks/recording`.
Settings: EVENTS_TABLE_NAME, AUTH_SECRET_ID, FALLBACK_QUEUE_URL, PUBLIC_CALLBACK_URL (optional:
the URL exactly as configured in Plivo; by default the API's own URL from the request context),
RETENTION_DAYS and ARCHIVE_RETENTION_DAYS (the event's ExpiresAt: logic/retention.py),
MEDIA_ALLOW_LOOPBACK (local stack only).
Permissions: dynamodb:PutItem/UpdateItem on the events table, sqs:SendMessage on the fallback
queue, secretsmanager:GetSecretValue on the auth secret, kms for both.
Answers (JSON): 200 stored, duplicate, conflict (kept on the item) or queued (fallback queue);
400 malformed body; 401 signature headers missing; 403 signature wrong or no token configured;
404 any other path; 405 any other method (TRACE too); 413 body over 64 KiB; 415 other content
types; 422 a key attribute missing, not valid or given twice, naming the fields
(models/callback.py), each refusal counted in CallbackRejected by Reason; 503 only when neither
the table nor the fallback queue took the event, or when the auth secret cannot be read (fail
closed: nothing is verified without it).
Nothing is written for a rejected request. The secret and the table get only the time that
leaves one queue attempt and the answer inside the invocation (dal/aws.py `call_deadlines`,
time_budgets.py): a stalled table, queue or secret ends in one of these answers, never in the
Lambda timeout.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from recording_archive.config import CALLBACK_PATH, CallbackSettings
from recording_archive.dal.auth_secret import PlivoCredentials, SecretUnavailableError
from recording_archive.dal.aws import call_deadlines
from recording_archive.handlers import http_errors, wiring
from recording_archive.handlers.http_api_event import HttpApiEvent
from recording_archive.handlers.http_errors import Answer
from recording_archive.logic.callback_request import (
    decode_request,
    validate_callback,
    verify_request,
)
from recording_archive.logic.store_callback import StoreResult, build_item, store_event
from recording_archive.models import callback_openapi
from recording_archive.models import item as f
from recording_archive.models.errors import (
    CallbackRejectedError,
    FallbackUnavailableError,
    MalformedBodyError,
)
from recording_archive.observability import NAMESPACE, SERVICE, logger, masked_fields, metrics
from recording_archive.time_budgets import callback_deadlines

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

# The one route and its methods; every other method on it is answered 405, every other path 404.
# The function serves them itself rather than through Powertools' APIGatewayHttpResolver, whose
# package import (every resolver, AppSync's asyncio) was the largest part of the cold start
# (bench/README.md); the resolver still renders the route's OpenAPI description
# (`openapi_resolver`, scripts/gen_openapi.py).
ROUTE_METHODS = ("POST", "GET")

# With SnapStart on, clients and the secret are made again in each restored environment.
wiring.register_snapstart_hooks()


# A signature has no timestamp, so a captured request can be replayed; storage is idempotent,
# which makes a replay harmless. This small per-environment memory only makes replays visible.
_recent_nonces: OrderedDict[tuple[str, str], None] = OrderedDict()
_RECENT_NONCES_MAX = 4096


def _seen_before(nonce: str, signatures: tuple[str, ...]) -> bool:
    key = (nonce, ",".join(signatures))
    if key in _recent_nonces:
        _recent_nonces.move_to_end(key)
        return True
    _recent_nonces[key] = None
    if len(_recent_nonces) > _RECENT_NONCES_MAX:
        _recent_nonces.popitem(last=False)
    return False


def public_callback_url(settings: CallbackSettings, event: HttpApiEvent) -> str:
    """The URL Plivo signed: configured exactly, or the API's own URL from the request context.

    The request context's domain name and stage are set by API Gateway (it routes only its own
    domains), unlike Host or X-Forwarded-* headers, which a client controls and which are never
    read here.
    """
    if settings.public_callback_url:
        return settings.public_callback_url
    # AWS_REGION is read into the settings like every other variable (Lambda always sets it).
    domain = event.domain_name or f"{event.api_id}.execute-api.{settings.aws_region}.amazonaws.com"
    stage = event.stage
    prefix = "" if stage == "$default" or ".execute-api." not in domain else f"/{stage}"
    return f"https://{domain}{prefix}{CALLBACK_PATH}"


def _count(name: str, **dimensions: str) -> None:
    """One count; with extra dimensions it is emitted on its own (the service dimension kept)."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as m:
        for key, value in dimensions.items():
            m.add_dimension(name=key, value=value)


def _body_bytes(event: HttpApiEvent) -> bytes:
    body = event.body
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedBodyError("body is not valid base64") from exc
    return body.encode("utf-8", errors="surrogatepass")


def receive_callback(event: HttpApiEvent) -> Answer:
    """POST or GET of the callback route: verify, validate, store (or refuse)."""
    deps = wiring.callback_dependencies()
    request = decode_request(
        event.method, event.headers, _body_bytes(event), event.raw_query_string
    )

    try:
        credentials: PlivoCredentials = deps.credentials()
    except SecretUnavailableError:
        logger.error("auth secret unavailable: callback cannot be verified")
        _count("SignatureUnverifiable")
        return http_errors.secret_unavailable()
    verify_request(request, public_callback_url(deps.settings, event), credentials.auth_tokens)
    if _seen_before(request.nonce, request.signatures):
        logger.warning("signed request seen before (replay or retry)")
        _count("CallbackReplaySeen")

    callback = validate_callback(request, allow_loopback_http=deps.settings.media_allow_loopback)
    logger.set_correlation_id(str(callback.SessionUUID))
    item = build_item(
        callback,
        request,
        received_at=datetime.now(UTC),
        retention_days=deps.settings.retention_days,
        archive_retention_days=deps.settings.archive_retention_days,
    )
    try:
        result = store_event(item, deps.store, deps.fallback)
    except FallbackUnavailableError:
        logger.error("event lost unless Plivo retries: table and fallback queue both failed")
        _count("CallbackStoreFailed")
        return http_errors.store_unavailable()

    event_name = callback.EventName if callback.EventName in f.KNOWN_EVENTS else "Other"
    if result is StoreResult.DUPLICATE:
        _count("CallbackDuplicate")
    elif result is StoreResult.CONFLICT:
        _count("CallbackConflict")
        logger.warning("different payload for an existing event kept on its item")
    else:
        if result is StoreResult.QUEUED:
            _count("CallbackFallbackQueued")
            logger.warning("table unavailable: event sent to the fallback queue")
        _count("CallbackAccepted", EventName=event_name)
        if callback.EventName == f.EVENT_FAILED:
            _count("SessionRecordingFailedReceived")
    logger.info(
        "callback %s",
        result.value,
        extra={
            "event_name": callback.EventName,
            "sequence_number": callback.SequenceNumber,
            "recording_uuid": callback.RecordingUUID,
            "attributes": masked_fields(
                {k: v for k, v in request.params.items() if k in ("From", "To", "VirtualNumber")}
            ),
        },
    )
    return http_errors.json_answer(
        200,
        {
            "status": result.value,
            "sessionUUID": str(callback.SessionUUID),
            "sequenceNumber": callback.SequenceNumber,
        },
    )


def rejected(exc: CallbackRejectedError) -> Answer:
    answer = http_errors.rejected(exc)
    # Every refusal counted, by cause: Plivo does not retry a 4xx, so each one is an event that
    # only `reconcile` can bring back.
    _count("CallbackRejected", Reason=exc.reason)
    logger.info("callback rejected", extra={"status": answer.status_code, "reason": exc.reason})
    return answer


def route(event: HttpApiEvent) -> Answer:
    """The answer to one request: the route's methods, 405 for the others, 404 elsewhere.

    `event.path` is the path without the stage prefix (as the resolver matched it).
    """
    if event.path != CALLBACK_PATH:
        return http_errors.not_found()
    if event.method not in ROUTE_METHODS:
        return http_errors.method_not_allowed()
    try:
        return receive_callback(event)
    except CallbackRejectedError as exc:
        return rejected(exc)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The secret and the table end in time for the queue send and the answer (time_budgets.py).
    with call_deadlines(callback_deadlines(context.get_remaining_time_in_millis())):
        return route(HttpApiEvent(event)).proxy_result()


def openapi_resolver() -> APIGatewayHttpResolver:
    """Powertools' resolver with the route's description, only to render `openapi.json`
    (scripts/gen_openapi.py; tests/reliability/test_openapi.py checks it is current). It never
    serves a request: `route` does, with the same answers."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()

    # The name gives the operation ids (receive_callback_callbacks_recording_post/_get).
    def receive_callback() -> None:
        raise NotImplementedError("documentation only: lambda_handler serves the route")

    # GET first: the order the decorators registered them in, which orders openapi.json.
    described = (
        ("GET", "attributes in the query string", callback_openapi.GET_RESPONSES),
        ("POST", "form or JSON body", callback_openapi.RESPONSES),
    )
    extensions = {"GET": callback_openapi.GET_EXTENSIONS, "POST": callback_openapi.POST_EXTENSIONS}
    for method, body, responses in described:
        app.route(
            CALLBACK_PATH,
            method=method,
            summary=f"A Plivo recording callback ({body})",
            responses=responses,
            openapi_extensions=extensions[method],
        )(receive_callback)
    return app
