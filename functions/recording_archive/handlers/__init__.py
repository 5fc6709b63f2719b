"""One module per Lambda function (each exporting `lambda_handler`): parsing, one call into logic/.

Also: wiring.py, the one composition root (collaborators built lazily and once, `reset()` for
tests; the operator CLI uses it too), and http_errors.py, the one place domain errors become HTTP
answers. Handlers may import every layer; nothing outside handlers/ (but the CLI) imports them.
"""
