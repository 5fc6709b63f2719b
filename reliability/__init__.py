"""`make reliability`: load, faults, hostile input and template checks against the local stack.

Run as a module: `python -m reliability [--quick] [--only load,faults,hostile,template]`. Prints a
table of figures and writes them to reliability/results.json. The bounded subset that `make test`
runs is tests/reliability/, which calls the same functions with small sizes.

- stack.py            the local stack as the suites see it (ready file, clients, workers, items)
- callbacks.py        callbacks of the suites (sender, sessions); load.py, faults.py two suites
- invoke.py           one function run in a process of its own, with a worker's environment
- hostile/            hostile input, one module per suite; signed_fuzz.py the large signed run
- template_checks.py  checkov and the template checks; logscan.py secrets in log lines
- egress_guard/       a sitecustomize that refuses any lookup or connection off loopback
- results.json        the figures of the last run

May import: the project's packages and tests.support (never another tests/ module); tests import
reliability only in tests/reliability/, which checks it.
"""
