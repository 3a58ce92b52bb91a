"""ClickHouse: the history sink, and the engines it talks to (a server, or chDB in-process)."""
