"""The use cases: signature V3, decoding and validating a callback, storing it, archiving a
recording, reconcile. They take models and the ports of ports.py, and return models.

Imports models/, config.py and observability.py only: never dal/, boto3 or an event shape.
"""
