"""The HTTP API (aiohttp): app factory, handlers, problem+json errors, OpenAPI document."""
