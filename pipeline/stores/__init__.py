"""Where scored posts land and are read back: Redis for live windows, ClickHouse for history."""
