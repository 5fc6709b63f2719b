"""Signed fuzzing: callbacks of any shape, signed by Plivo's own SDK, and what must hold for each.

Shared by the bounded run in `make test` (tests/integration/test_signed_fuzz.py), the large run
in `make reliability` (reliability/signed_fuzz.py) and the SDK comparison of JSON bodies
(tests/unit/test_signature_v3.py).

A case is drawn as a *spec* (which attributes, which shapes, which values) with its expected
answer worked out from the documented rules alone, not from the code under test:

- 413 body (or query) over 64 KiB; 415 content type neither form nor JSON; 400 an attribute
  name that is empty (DynamoDB refuses one, at any depth);
- 422 only for a key attribute (SessionUUID, SequenceNumber, EventName, RecordingUUID,
  RecordingURL) that is missing, not valid (not a UUID, not a non-negative integer, ...), or
  given twice with different values; on SessionRecordingCompleted, RecordingUUID and
  RecordingURL are required;
- 200 for everything else: unknown attributes, repeated non-key attributes, blank values,
  numbers of any size and exponent, booleans, nulls, nested objects, timestamps of any shape.

The spec becomes a request only when it is sent (`build`), under a fresh SessionUUID, so that
every case has a key of its own and "stored exactly once" can be checked per case.

Modules: spec.py (constants, specs and their strategies), cases.py (spec -> signed request and
expected answer), checks.py (properties of stored items and metrics), target.py (the handler
under test, one case, a run). This package re-exports their public names.
"""

from __future__ import annotations

from tests.support.signed_fuzz import cases, checks, spec, target
from tests.support.signed_fuzz.cases import *  # noqa: F403
from tests.support.signed_fuzz.checks import *  # noqa: F403
from tests.support.signed_fuzz.spec import *  # noqa: F403
from tests.support.signed_fuzz.target import *  # noqa: F403

__all__: list[str] = []
__all__ += spec.__all__
__all__ += cases.__all__
__all__ += checks.__all__
__all__ += target.__all__
