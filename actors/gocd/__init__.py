"""The GoCD side: the HTTP client and its parsers (``client``, and ``dashboard`` for the APIs that
replace the scheduled-jobs feed), the backlog sources (``backlog``: feed, dashboard, auto), and the
GoCDPoller actor that reads the backlog and the agents and carries out agent changes."""
