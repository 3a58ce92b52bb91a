"""Where scored posts land: Redis for live windows, ClickHouse for history."""
