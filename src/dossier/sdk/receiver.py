"""Verify Dossier webhooks on the receiving side. Standard library only.

This module imports nothing from the Dossier server, so a receiver can ``pip install dossier`` without the
server's dependencies mattering, or copy this single file into its own code base.

Which function to call:

- :func:`verify_standard` works for EVERY delivery, whatever its profile: every delivery carries the
  Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``). It also rejects
  replays of old deliveries. Prefer it.
- :func:`verify_kuration`, :func:`verify_kernel`, :func:`verify_kruncher` check the vendor header each
  profile's own documentation describes, for receivers written against that documentation.
- :class:`IdempotencyGuard` deduplicates on ``webhook-id``, the one id that is the same on every retry and
  manual redelivery (``X-Kernel-Delivery`` changes on every attempt).

Every verifier takes the RAW request body (bytes as received), returns the parsed JSON object on success,
and raises :class:`WebhookVerificationError` (with a machine-readable ``reason``) otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "DEFAULT_TOLERANCE",
    "Headers",
    "IdempotencyGuard",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "WebhookVerificationError",
    "verify_kernel",
    "verify_kruncher",
    "verify_kruncher_api_key",
    "verify_kuration",
    "verify_standard",
]

#: Seconds a ``webhook-timestamp`` may differ from the receiver's clock (Standard Webhooks recommends 5 min).
DEFAULT_TOLERANCE = 300
_SECRET_PREFIX = "whsec_"
_VENDOR_PREFIX = "sha256="

Secret = str | Iterable[str]


class Headers(Protocol):
    """What :func:`verify_standard` needs of a header collection.

    A plain dict, Flask/Werkzeug's ``request.headers`` and Starlette/FastAPI's ``request.headers`` all fit
    (the last two are not ``Mapping`` subclasses to a type checker, hence this protocol).
    """

    def get(self, key: str, /) -> str | None:
        """The value of header ``key``, or None."""
        ...

    def items(self) -> Iterable[tuple[str, str]]:
        """Every (name, value) pair."""
        ...


class WebhookVerificationError(Exception):
    """A delivery failed verification; answer it with 400/401 and do not process it.

    ``reason`` is one of: ``missing_signature``, ``missing_header``, ``unsupported_signature``,
    ``signature_mismatch``, ``invalid_timestamp``, ``timestamp_too_old``, ``timestamp_too_new``,
    ``invalid_json``, ``wrong_api_key``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# --- shared helpers -----------------------------------------------------------------------------------------


def _secrets(secret: Secret) -> list[str]:
    # Several secrets let a receiver accept both while it switches over after a rotation.
    found = [secret] if isinstance(secret, str) else list(secret)
    if not found or not all(isinstance(s, str) and s for s in found):
        raise ValueError("secret must be a non-empty string (or several, during a rotation)")
    return found


def _raw(body: Any) -> bytes:
    # The most common mistake of all: verifying a parsed-and-re-serialised body. Refuse it loudly.
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(
        f"pass the raw request body (bytes), not {type(body).__name__}: parsing and re-serialising "
        "changes the bytes, so the signature no longer matches"
    )


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookVerificationError("invalid_json", f"body is not UTF-8 JSON ({exc})") from None


def _vendor_hex(header: str | None) -> str:
    """The hex digest out of ``sha256=<hex>`` (the prefix is optional); raise for anything else."""
    if header is None or not header.strip():
        raise WebhookVerificationError("missing_signature", "the signature header is missing or empty")
    value = header.strip()
    if value.lower().startswith(_VENDOR_PREFIX):
        value = value[len(_VENDOR_PREFIX) :]
    elif "=" in value or "," in value:
        # e.g. "sha1=..." or a Standard Webhooks "v1,..." value passed to the wrong verifier.
        raise WebhookVerificationError(
            "unsupported_signature",
            "expected 'sha256=<hex>' (use verify_standard for the webhook-signature header)",
        )
    value = value.lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WebhookVerificationError("unsupported_signature", "expected 64 hex digits after 'sha256='")
    return value


def _check_hmac_hex(signed: bytes, header: str | None, secret: Secret) -> None:
    provided = _vendor_hex(header)
    matched = False
    for candidate in _secrets(secret):
        expected = hmac.new(candidate.encode("utf-8"), signed, hashlib.sha256).hexdigest()
        # No early exit: every secret is compared, so timing says nothing about which one matched.
        matched |= hmac.compare_digest(expected, provided)
    if not matched:
        raise WebhookVerificationError(
            "signature_mismatch",
            "signature does not match: check the secret (the whole whsec_... string) and that the body is "
            "the raw request body",
        )


def _json_object(body: bytes) -> dict[str, Any]:
    data = _parse(body)
    if not isinstance(data, dict):
        raise WebhookVerificationError("invalid_json", "body is not a JSON object")
    return data


# --- vendor profiles ----------------------------------------------------------------------------------------


def verify_kuration(
    body: bytes,
    header: str | None,
    secret: Secret,
    *,
    mode: Literal["canonical", "raw"] = "canonical",
) -> dict[str, Any]:
    """Verify ``X-Kuration-Signature`` on a ``tool_output_ready`` delivery and return the parsed payload.

    ``mode="canonical"`` (the default, as documented): HMAC over
    ``json.dumps(payload, separators=(",", ":"))`` of the parsed body, so a proxy that reformats the JSON
    does not break verification. ``mode="raw"``: HMAC over the body bytes as received. Dossier sends the
    canonical bytes as the body, so both succeed on an untouched delivery. ``header`` is the header value;
    the ``sha256=`` prefix is optional. ``secret`` is the endpoint's whole ``whsec_...`` string (or several,
    while you switch after a rotation).
    """
    raw = _raw(body)
    if mode == "raw":
        _check_hmac_hex(raw, header, secret)
        return _json_object(raw)
    if mode != "canonical":
        raise ValueError("mode is 'canonical' or 'raw'")
    _vendor_hex(header)  # A missing header is reported as such, before any JSON error.
    data = _json_object(raw)
    canonical = json.dumps(data, separators=(",", ":")).encode("utf-8")
    _check_hmac_hex(canonical, header, secret)
    return data


def verify_kernel(body: bytes, header: str | None, secret: Secret) -> dict[str, Any]:
    """Verify ``X-Kernel-Signature`` (HMAC-SHA256 of the raw body) and return the parsed payload.

    Deduplicate on the ``webhook-id`` header, not on ``X-Kernel-Delivery``: that one is new on every attempt.
    """
    raw = _raw(body)
    _check_hmac_hex(raw, header, secret)
    return _json_object(raw)


def verify_kruncher(body: bytes, header: str | None, secret: Secret) -> dict[str, Any]:
    """Verify ``X-Kruncher-Signature`` (HMAC-SHA256 of the raw body) and return the parsed payload."""
    raw = _raw(body)
    _check_hmac_hex(raw, header, secret)
    return _json_object(raw)


def verify_kruncher_api_key(header: str | None, api_key: str) -> None:
    """Constant-time check of ``x-kruncher-api-key``, for endpoints that opted in to receiving it.

    Prefer :func:`verify_kruncher`: the API-key header is off by default because it sends a credential
    that can call the whole API to the receiver's URL.
    """
    if not header:
        raise WebhookVerificationError("missing_header", "x-kruncher-api-key is missing")
    if not hmac.compare_digest(header.strip().encode("utf-8"), api_key.encode("utf-8")):
        raise WebhookVerificationError("wrong_api_key", "x-kruncher-api-key does not match")


# --- Standard Webhooks --------------------------------------------------------------------------------------


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        # Tolerate missing padding, as the reference libraries do.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is 'whsec_' + base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _header(headers: Headers, name: str) -> str | None:
    # Framework header objects are case-insensitive; a plain dict is not, so look both ways.
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_standard(
    body: bytes,
    headers: Headers,
    secret: Secret,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: datetime | float | None = None,
) -> dict[str, Any]:
    """Verify the Standard Webhooks headers of any Dossier delivery and return the parsed payload.

    ``headers`` is the request's header mapping (any case). The signed content is
    ``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed on the base64 part of the ``whsec_`` secret.
    ``webhook-signature`` may list several space-separated ``v1,<base64>`` signatures (during a secret
    rotation Dossier signs with the new and the old secret); one match is enough. A timestamp more than
    ``tolerance`` seconds from ``now`` (default: the current time) is rejected, old or future, which stops
    replays of captured deliveries. Raises :class:`ValueError` for a secret that is not base64.
    """
    raw = _raw(body)
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    if not msg_id or not stamp or not signature:
        missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", stamp)) if not v]
        missing += [] if signature else ["webhook-signature"]
        raise WebhookVerificationError("missing_header", f"missing header(s): {', '.join(missing)}")
    stamp = stamp.strip()

    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookVerificationError(
            "invalid_timestamp", "webhook-timestamp is not integer seconds"
        ) from None
    if now is None:
        current = time.time()
    elif isinstance(now, datetime):
        # A naive datetime is UTC here; .timestamp() alone would read it as local time.
        current = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    else:
        current = float(now)
    if sent < current - tolerance:
        raise WebhookVerificationError("timestamp_too_old", f"sent {int(current - sent)} s ago (replay?)")
    if sent > current + tolerance:
        raise WebhookVerificationError("timestamp_too_new", f"sent {int(sent - current)} s in the future")

    provided: list[bytes] = []
    for item in signature.split():
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue  # Other versions (e.g. asymmetric v1a) are skipped, as the spec says.
        try:
            provided.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not provided:
        raise WebhookVerificationError("unsupported_signature", "no 'v1,<base64>' in webhook-signature")

    # The header strings themselves are signed, not their parsed values.
    signed = f"{msg_id}.{stamp}.".encode() + raw
    matched = False
    for candidate in _secrets(secret):
        expected = hmac.new(_standard_key(candidate), signed, hashlib.sha256).digest()
        for sig in provided:
            matched |= hmac.compare_digest(expected, sig)
    if not matched:
        raise WebhookVerificationError(
            "signature_mismatch",
            "no webhook-signature matches: check the secret and that the body is the raw request body",
        )
    return _json_object(raw)


# --- idempotency --------------------------------------------------------------------------------------------


class IdempotencyStore(Protocol):
    """Where :class:`IdempotencyGuard` remembers ids. Two methods; both must be atomic.

    With Redis, for instance: ``add`` is ``SET key 1 NX EX ttl`` (True when it was set) and ``discard`` is
    ``DEL key``. With SQL: ``INSERT`` into a table with a unique key (False on conflict) and ``DELETE``.
    """

    def add(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if it was not already recorded (atomic check-and-set)."""
        ...

    def discard(self, key: str) -> None:
        """Forget ``key`` (processing failed, so the sender's retry must be processed)."""
        ...


class MemoryIdempotencyStore:
    """In-process store: least-recently-used eviction beyond ``max_entries``, expiry after the TTL.

    Thread-safe. Only correct for a single process; with several workers use a shared store (Redis, SQL).
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        """``max_entries`` bounds memory; ``clock`` is injectable for tests."""
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, ttl: float) -> bool:
        """Record ``key`` until ``ttl`` seconds from now; False if it is already recorded and not expired."""
        now = self._clock()
        with self._lock:
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                self._expiry.move_to_end(key)
                return False
            self._expiry[key] = now + ttl
            self._expiry.move_to_end(key)
            while len(self._expiry) > self._max:
                self._expiry.popitem(last=False)
            return True

    def discard(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._expiry.pop(key, None)

    def __len__(self) -> int:
        """Entries held (expired ones included until they are evicted or re-added)."""
        return len(self._expiry)


class IdempotencyGuard:
    """Process each delivery once, keyed on the stable ``webhook-id`` header.

    Dossier delivers at least once: a retry after a lost response, or a manual redelivery, repeats an id.
    The default TTL (48 h) covers the longest retry schedule (about 28 h); redeliveries later than that are
    processed again.
    """

    def __init__(self, store: IdempotencyStore | None = None, *, ttl: float = 48 * 3600) -> None:
        """``store`` defaults to a :class:`MemoryIdempotencyStore`; ``ttl`` is in seconds."""
        self.store: IdempotencyStore = store if store is not None else MemoryIdempotencyStore()
        self.ttl = ttl

    def claim(self, webhook_id: str) -> bool:
        """True the first time ``webhook_id`` is seen (process it); False for a duplicate (answer 2xx)."""
        if not webhook_id:
            raise ValueError("webhook_id is empty: pass the webhook-id header, after verifying the delivery")
        return self.store.add(webhook_id, self.ttl)

    def release(self, webhook_id: str) -> None:
        """Forget ``webhook_id`` after processing failed, so the sender's retry is processed."""
        self.store.discard(webhook_id)

    @contextmanager
    def once(self, webhook_id: str) -> Iterator[bool]:
        """``with guard.once(id) as first:`` yields :meth:`claim`'s answer; an exception releases the id."""
        first = self.claim(webhook_id)
        try:
            yield first
        except BaseException:
            if first:
                self.release(webhook_id)
            raise
