"""Default cardiac-arrest call-type rules.

Cardiac arrest is never one universal code, so the answer is tri-state and
conservative: :func:`is_cardiac_arrest_call` returns ``True`` when a rule
matches, ``False`` only when an agency rule explicitly excludes the code, and
``None`` (unknown — never alerts) otherwise. Agencies extend the defaults with
their own exact codes and :mod:`fnmatch` glob patterns (see :meth:`CallTypeRules.extend`).

Defaults:

* APCO ANS 2.103.2 / EIDO common incident types ``NCRCPRF`` ("Medical –
  Cardiopulmonary Resuscitation") and ``RESPARR`` ("Respiratory Arrest");
* NERIS ``MEDICAL||ILLNESS||CARDIAC_ARREST``;
* MPDS protocol 9 determinants of levels D and E (``09-D-01``, ``09-E-01`` …)
  as the code in any spelling (``09-E-01``, ``09E01``, ``9-E-1``, ``09E1``), and,
  in the free text, only the zero-padded forms (``09-E-01``, ``09E01``, ``09-D-1``)
  so that house numbers or unit names are not mistaken for determinants.

Deliberately *not* matched: ``CARDIAC`` (heart attack / chest pain), ``ALRDEFIB``
(AICD alarm), PulsePoint ``AED`` (AED cabinet alarm), ``PERUNCON``, ``CHOKE``,
``DROWN``, MPDS ``09-B``/``09-O`` (obvious or expected death). Agencies may add
them after review by their medical director.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

DEFAULT_CARDIAC_ARREST_CODES: frozenset[str] = frozenset(
    {"NCRCPRF", "RESPARR", "MEDICAL||ILLNESS||CARDIAC_ARREST"}
)
"""Exact call-type codes (compared case-insensitively) that mean cardiac arrest."""

_MPDS_CODE = re.compile(r"0?9-?[DE]-?\d{1,2}[A-Z]?", re.ASCII)
_MPDS_TEXT = re.compile(r"(?<![0-9A-Z])09-?[DE]-?\d{1,2}[A-Z]?(?![0-9A-Z])", re.ASCII)


def _norm(value: str) -> str:
    return value.strip().upper()


@dataclass(frozen=True, slots=True)
class CallTypeRules:
    """Which call types count as cardiac arrest for one agency.

    ``codes`` are exact codes and ``patterns`` fnmatch globs (``"CPR*"``,
    ``"09-[DE]-*"``), both matched case-insensitively against the call-type code.
    ``text_patterns`` are globs matched against the upper-cased free text
    (``"*CARDIAC ARREST*"``). ``excluded_codes``/``excluded_patterns`` win over
    everything and give ``False``. ``mpds`` turns MPDS 09-D/09-E detection on.
    """

    codes: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    text_patterns: tuple[str, ...] = ()
    excluded_codes: frozenset[str] = frozenset()
    excluded_patterns: tuple[str, ...] = ()
    mpds: bool = True
    _codes: frozenset[str] = field(init=False, repr=False, compare=False)
    _excluded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codes", frozenset(_norm(c) for c in self.codes))
        object.__setattr__(self, "_excluded", frozenset(_norm(c) for c in self.excluded_codes))

    def extend(
        self,
        *,
        codes: Iterable[str] = (),
        patterns: Iterable[str] = (),
        text_patterns: Iterable[str] = (),
        excluded_codes: Iterable[str] = (),
        excluded_patterns: Iterable[str] = (),
    ) -> CallTypeRules:
        """A copy with an agency's own codes and patterns added to these rules."""
        return CallTypeRules(
            codes=self.codes | frozenset(codes),
            patterns=(*self.patterns, *patterns),
            text_patterns=(*self.text_patterns, *text_patterns),
            excluded_codes=self.excluded_codes | frozenset(excluded_codes),
            excluded_patterns=(*self.excluded_patterns, *excluded_patterns),
            mpds=self.mpds,
        )

    def matches(self, code: str, text: str | None) -> bool | None:
        """See :func:`is_cardiac_arrest_call`."""
        norm = _norm(code)
        if norm in self._excluded or any(
            fnmatchcase(norm, _norm(p)) for p in self.excluded_patterns
        ):
            return False
        if norm and (
            norm in self._codes or any(fnmatchcase(norm, _norm(p)) for p in self.patterns)
        ):
            return True
        if self.mpds and _MPDS_CODE.fullmatch(norm):
            return True
        if text:
            upper = text.upper()
            if self.mpds and _MPDS_TEXT.search(upper):
                return True
            if any(fnmatchcase(upper, _norm(p)) for p in self.text_patterns):
                return True
        return None


DEFAULT = CallTypeRules(codes=DEFAULT_CARDIAC_ARREST_CODES)
"""The built-in rules: :data:`DEFAULT_CARDIAC_ARREST_CODES` plus MPDS 09-D/09-E."""


def is_cardiac_arrest_call(
    code: str, text: str | None, rules: CallTypeRules = DEFAULT
) -> bool | None:
    """``True`` if ``code`` (or an MPDS determinant in ``text``) is a cardiac arrest.

    ``False`` only for an explicitly excluded code, ``None`` (unknown, never alerts)
    otherwise.
    """
    return rules.matches(code, text)
