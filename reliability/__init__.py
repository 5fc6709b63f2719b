"""`make reliability`: load, faults, hostile input and template checks against the local stack.

Run as a module: `python -m reliability [--quick] [--only load,faults,hostile,template]`. Prints a
table of figures and writes them to bench/reliability.json. The bounded subset that `make test`
runs is tests/reliability/, which calls the same functions with small sizes.
"""
