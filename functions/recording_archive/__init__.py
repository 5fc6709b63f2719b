"""The Lambda functions' code (every function has CodeUri functions/; only Handler differs).

handlers/ -> logic/ -> models/, with dal/ implementing logic's ports (logic/ports.py); the one
composition root is handlers/wiring.py. config.py, time_budgets.py and observability.py are shared
by every layer.
"""
