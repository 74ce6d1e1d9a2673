"""asyncpg queries by aggregate; functions take a connection, callers own transactions."""
