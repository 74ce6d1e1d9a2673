"""The pure core: values, state machines and decisions. No I/O library may be imported here."""
