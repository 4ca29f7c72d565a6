"""Protocol-faithful simulators of a GoCD server and a Mesos master.

They speak the real wire formats over real HTTP on loopback, quirks included
(see ``../shared/reference/``), so that tests, the sandbox and benchmarks hit
the bugs that real servers would show users.
"""
