"""Voice-call alerts through Twilio's Calls API with inline TwiML.

The call reads the alert twice in the volunteer's language and collects one
digit: 1 accepts, 2 declines. Twilio POSTs the digit to ``gather_url`` (a
route of the dispatch API, signed like status callbacks).

Lifecycle as for every :class:`notify._twilio_http.TwilioNotifier`: ``await
TwilioVoiceNotifier.create(...)`` inside the loop, ``await aclose()`` at shutdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Self

from twilio.twiml.voice_response import VoiceResponse

from notify._twilio_http import DeadlineTwilioHttpClient, TwilioNotifier, for_alert, utcnow
from notify.errors import ConfigurationError
from notify.ports import AlertMessage, Channel, DeliveryResult

MAX_TWIML_CHARS = 4000
"""Twilio's limit for the ``Twiml`` parameter of CreateCall."""

SAY_LANGUAGES: dict[str, str] = {
    "da": "da-DK",
    "de": "de-DE",
    "en": "en-US",
    "es": "es-ES",
    "fi": "fi-FI",
    "fr": "fr-FR",
    "it": "it-IT",
    "nb": "nb-NO",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "pt": "pt-PT",
    "sv": "sv-SE",
}
"""Short language codes to ``<Say language=…>`` locales; ``xx-YY`` codes pass through."""

GATHER_PROMPTS: dict[str, str] = {
    "en": "Press 1 to accept. Press 2 to decline.",
    "de": "Drücken Sie 1, um anzunehmen. Drücken Sie 2, um abzulehnen.",
    "fr": "Appuyez sur 1 pour accepter. Appuyez sur 2 pour refuser.",
    "es": "Pulse 1 para aceptar. Pulse 2 para rechazar.",
    "it": "Premi 1 per accettare. Premi 2 per rifiutare.",
    "nl": "Druk op 1 om te accepteren. Druk op 2 om te weigeren.",
}
"""The key prompt; languages missing here get the English prompt in an English voice."""

DEFAULT_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")

# XML 1.0 forbids most C0 controls even when escaped; drop them (and lone surrogates).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_LANG_RE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")


def _clean(text: str) -> str:
    return " ".join(_XML_INVALID.sub("", text).split())


def say_language(language: str) -> tuple[str, str]:
    """``(locale for <Say>, key of GATHER_PROMPTS)`` for a volunteer's language code."""
    lang = language.strip() if _LANG_RE.match(language.strip()) else "en"
    short = lang.split("-")[0].lower()
    locale = lang if "-" in lang else SAY_LANGUAGES.get(short, "en-US")
    if locale == "en-US" and short not in SAY_LANGUAGES:
        short = "en"
    return locale, short


def _render(text: str, locale: str, prompt_key: str, gather_url: str) -> str:
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1, action=gather_url, method="POST", timeout=10, action_on_empty_result=False
    )
    gather.say(text, language=locale)
    gather.pause(length=1)
    gather.say(text, language=locale)
    prompt = GATHER_PROMPTS.get(prompt_key)
    if prompt is None:
        gather.say(GATHER_PROMPTS["en"], language="en-US")
    else:
        gather.say(prompt, language=locale)
    return str(response.to_xml(xml_declaration=True))


def build_alert_twiml(message: AlertMessage, gather_url: str) -> str:
    """TwiML that reads the alert twice in the volunteer's language, then asks for 1 or 2.

    Text is escaped by the TwiML builder (ElementTree) and stripped of characters
    XML cannot carry; it is shortened so the document stays within Twilio's
    4000-character limit.
    """
    locale, prompt_key = say_language(message.language)
    text = _clean(f"{message.title}. {message.body}" if message.title else message.body)
    url = _clean(gather_url)
    twiml = _render(text, locale, prompt_key, url)
    if len(twiml) <= MAX_TWIML_CHARS:
        return twiml
    # Escaping can grow the text (``&`` -> ``&amp;``): find the longest prefix that fits.
    low, high = 0, len(text)
    best = _render("", locale, prompt_key, url)
    while low < high:
        mid = (low + high + 1) // 2
        candidate = _render(text[:mid].rstrip() + "…", locale, prompt_key, url)
        if len(candidate) <= MAX_TWIML_CHARS:
            low, best = mid, candidate
        else:
            high = mid - 1
    return best


class TwilioVoiceNotifier(TwilioNotifier):
    """:class:`notify.ports.Notifier` for voice calls. Build it with :meth:`create` inside the loop.

    ``gather_url`` and ``status_callback_url`` may contain ``{alert_id}``, filled in per call.
    """

    CHANNEL: ClassVar[Channel] = Channel.VOICE

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        http_client: DeadlineTwilioHttpClient,
        from_number: str,
        gather_url: str,
        status_callback_url: str | None = None,
        status_callback_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        ring_timeout_s: int = 25,
        owns_http_client: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not from_number:
            raise ConfigurationError("from_number is required for voice calls")
        if not gather_url:
            raise ConfigurationError("gather_url is required for voice calls")
        if not 5 <= ring_timeout_s <= 600:
            raise ConfigurationError("ring_timeout_s must be within 5..600")
        super().__init__(
            account_sid=account_sid,
            auth_token=auth_token,
            http_client=http_client,
            owns_http_client=owns_http_client,
            clock=clock,
        )
        self._from = from_number
        self._gather_url = gather_url
        self._status_callback = status_callback_url
        self._status_events = list(status_callback_events)
        self._ring_timeout_s = ring_timeout_s

    @classmethod
    async def create(
        cls,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        gather_url: str,
        status_callback_url: str | None = None,
        base_url: str | None = None,
        request_timeout_s: float = 10.0,
        ring_timeout_s: int = 25,
        clock: Callable[[], datetime] = utcnow,
    ) -> Self:
        """Build the notifier and its own HTTP client (must run inside the event loop)."""
        return await cls._with_own_client(
            request_timeout_s=request_timeout_s,
            base_url=base_url,
            account_sid=account_sid,
            auth_token=auth_token,
            from_number=from_number,
            gather_url=gather_url,
            status_callback_url=status_callback_url,
            ring_timeout_s=ring_timeout_s,
            clock=clock,
        )

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        if self._remaining_s(message) <= 0:
            return self._expired("alert expired before calling")
        kwargs: dict[str, Any] = {
            "to": message.address,
            "from_": self._from,
            "twiml": build_alert_twiml(message, for_alert(self._gather_url, message.alert_id)),
            "timeout": self._ring_timeout_s,
        }
        if self._status_callback:
            kwargs["status_callback"] = for_alert(self._status_callback, message.alert_id)
            kwargs["status_callback_event"] = self._status_events
            kwargs["status_callback_method"] = "POST"

        async def create() -> Any:
            return await self._client.calls.create_async(**kwargs)

        return await self._create(create, timeout_s=timeout_s)
