"""The GoCD side: the HTTP client and its parsers, and the GoCDPoller actor that reads the
backlog and the agents and carries out agent changes."""
