"""The fault campaign of issue 12: faults injected into the daemon as a real process, invariants
checked from what the simulators saw, and the parsers, configuration, policies and webhook fuzzed.

:mod:`~bench.faults.world` runs the simulators and ``bin/gocd-mesosd``;
:mod:`~bench.faults.scenarios` injects each fault; :mod:`~bench.faults.invariants` checks
what must hold after it; :mod:`~bench.faults.fuzz` fuzzes with hypothesis; ``python -m
bench.faults`` (``tox -e faults``) runs it all and prints the tables.
"""
