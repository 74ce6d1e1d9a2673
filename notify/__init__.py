"""Delivery of alerts to volunteers' phones behind one :class:`Notifier` Protocol.

Providers never import ``dispatch``; they receive an :class:`AlertMessage` and
return a :class:`DeliveryResult`, never a bool.
"""

from notify.ports import (
    AlertMessage,
    BatchNotifier,
    Channel,
    DeliveryOutcome,
    DeliveryResult,
    LookupNotifier,
    Notifier,
)

__all__ = [
    "AlertMessage",
    "BatchNotifier",
    "Channel",
    "DeliveryOutcome",
    "DeliveryResult",
    "LookupNotifier",
    "Notifier",
]
