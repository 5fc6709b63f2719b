"""The only code that talks to AWS or over HTTP: the events table, the fallback queue, the auth
secret, S3, Plivo's REST API and its media host (media/). Implements logic/ports.py structurally;
turns AWS and HTTP failures into models/errors.py exceptions.

Imports models/, config.py and observability.py only; never logic/ or handlers/.
"""
