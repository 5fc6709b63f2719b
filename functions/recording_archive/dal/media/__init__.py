"""Fetching a recording from Plivo's media host: url_policy.py decides which URLs and addresses
may be fetched (SSRF defence, no I/O but DNS), download.py connects and streams. Callers use
`MediaPolicy` and `MediaSource` from here. Imports models/ only (dal/ layer: HTTP)."""

from recording_archive.dal.media.download import MediaSource, MediaStream
from recording_archive.dal.media.url_policy import MediaPolicy, Resolver

__all__ = ["MediaPolicy", "MediaSource", "MediaStream", "Resolver"]
