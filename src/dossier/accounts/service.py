"""Accounts and API keys. Services flush; the caller's boundary commits."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts.models import Account, ApiKey
from dossier.db.base import utcnow
from dossier.errors import Conflict, InvalidInput, NotFound

API_KEY_PREFIX = "dsk_"
WEBHOOK_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class NewAccount:
    """An account just created, with the secrets that are shown this once only."""

    account: Account
    api_key: str
    webhook_secret: str


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def generate_webhook_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: usable as a Standard Webhooks secret and as a vendor HMAC key."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def create_account(session: AsyncSession, name: str) -> NewAccount:
    """Create an account with one API key and a webhook signing secret."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("account name must be 1 to 200 characters")
    existing = await session.scalar(select(Account.id).where(Account.name == name))
    if existing is not None:
        raise Conflict(f"an account named {name!r} already exists")
    secret = generate_webhook_secret()
    account = Account(name=name, webhook_secret=secret)
    session.add(account)
    await session.flush()
    key = await issue_api_key(session, account)
    return NewAccount(account=account, api_key=key, webhook_secret=secret)


async def issue_api_key(session: AsyncSession, account: Account) -> str:
    """Create another API key for an account; only its hash is stored."""
    key = generate_api_key()
    session.add(ApiKey(account_id=account.id, display_prefix=key[:10], key_hash=hash_api_key(key)))
    await session.flush()
    return key


async def rotate_webhook_secret(session: AsyncSession, account: Account, *, grace_seconds: float = 0) -> str:
    """Replace the account's webhook signing secret (the key of job callbacks, e.g. ``X-Kernel-Signature``).

    The new secret signs every attempt made from now on, retries of earlier deliveries included. Like an
    endpoint's secret, the old one keeps signing the Standard Webhooks ``webhook-signature`` header for
    ``grace_seconds`` (0: revoked now), so receivers can switch without losing a delivery; a vendor signature
    header holds one value and switches at once. Returns the new secret (shown once).
    """
    if grace_seconds < 0:
        raise InvalidInput("grace must be zero or positive")
    secret = generate_webhook_secret()
    if grace_seconds > 0:
        account.previous_webhook_secret = account.webhook_secret
        account.previous_secret_expires_at = utcnow() + timedelta(seconds=grace_seconds)
    else:
        account.previous_webhook_secret = None
        account.previous_secret_expires_at = None
    account.webhook_secret = secret
    await session.flush()
    return secret


async def authenticate(session: AsyncSession, key: str) -> Account | None:
    """The account an API key belongs to, or None when the key is unknown or revoked."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        return None
    stmt = (
        select(Account)
        .join(ApiKey, ApiKey.account_id == Account.id)
        .where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    account: Account | None = await session.scalar(stmt)
    return account


async def count_accounts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def get_account_by_name(session: AsyncSession, name: str) -> Account | None:
    account: Account | None = await session.scalar(select(Account).where(Account.name == name))
    return account


async def authenticate_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The live (not revoked) API key record for ``key``, or None."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        return None
    record: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    return record


async def account_for_key_id(session: AsyncSession, key_id: str) -> Account | None:
    """The account of a live API key, by the key's id (a dashboard session remembers which key opened it, so
    revoking the key ends the session)."""
    account: Account | None = await session.scalar(
        select(Account)
        .join(ApiKey, ApiKey.account_id == Account.id)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    )
    return account


async def list_api_keys(session: AsyncSession, account: Account) -> list[ApiKey]:
    """The account's API keys, revoked ones included, newest first (only their display prefixes)."""
    result = await session.scalars(
        select(ApiKey).where(ApiKey.account_id == account.id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return list(result)


async def revoke_api_key(session: AsyncSession, account: Account, key_id: str) -> ApiKey:
    """Revoke one of the account's keys; the last live key cannot be revoked (the account would be locked
    out). NotFound for another account's key."""
    key: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == account.id)
    )
    if key is None:
        raise NotFound(f"no API key {key_id!r}")
    if key.revoked_at is not None:
        return key
    live = await session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.account_id == account.id, ApiKey.revoked_at.is_(None))
    )
    if int(live or 0) <= 1:
        raise Conflict("this is the account's last API key: create another one before revoking it")
    key.revoked_at = utcnow()
    await session.flush()
    return key
