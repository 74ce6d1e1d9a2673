"""Parsers that turn what a CAD system sends into one normalized :class:`IncidentReport`.

Everything here is pure: bytes or mappings in, an ``IncidentReport`` or a
:class:`CadParseError` out. No I/O and no import of ``dispatch``, ``geoindex`` or ``notify``.
"""

from cad_adapters import models
from cad_adapters._time import MAX_YEAR, MIN_YEAR, in_supported_range, parse_timestamp
from cad_adapters.errors import CadParseError, UnknownLocation
from cad_adapters.models import *  # noqa: F403  (every model is the package's too)

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "CadParseError",
    "UnknownLocation",
    "in_supported_range",
    "parse_timestamp",
    *models.__all__,
]
