"""Shared types, with no I/O: the inbound callback (callback.py, callback_openapi.py), the stored
item (item.py: attribute names, `EventItem`), the archive (archive.py), Plivo's REST records
(plivo.py) and the domain errors (errors.py, no HTTP codes).

Imports nothing from handlers/, logic/ or dal/ (config.py for shared limits only).
"""
