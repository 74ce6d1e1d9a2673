"""Background workers. each is owned by one cleanup context in ``dispatch.web.app``."""
