"""Capture every formatted log line of the package's Powertools Logger (JSON, as in CloudWatch)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from recording_archive.observability import logger


@contextmanager
def captured_log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    inner = logging.getLogger(logger.name)
    inner.addHandler(handler)
    try:
        yield buffer
    finally:
        inner.removeHandler(handler)
