"""The key/value data every push about an alert carries, whatever the push channel.

FCM sends it as the message's ``data``; Web Push sends it inside the encrypted
JSON payload. One definition, so an app reads the same keys from either
(tests/notify/test_webpush.py compares them with what FCM builds).
"""

from __future__ import annotations

from datetime import UTC

from notify.ports import AlertMessage


def push_data(message: AlertMessage) -> dict[str, str]:
    """``message.data`` plus ``alert_id``, ``incident_id``, ``role`` and ``expires_at`` (UTC, Z)."""
    expires = message.expires_at.astimezone(UTC)
    return {
        **message.data,
        "alert_id": message.alert_id,
        "incident_id": message.incident_id,
        "role": message.role,
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }
