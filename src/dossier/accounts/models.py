from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, new_uuid, utcnow
from dossier.db.secrets import EncryptedText


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # HMAC signing secret for webhooks (`whsec_` + base64): encrypted at rest (we sign with it, so it is not
    # hashed).
    webhook_secret: Mapped[str] = mapped_column(EncryptedText())
    # After a rotation, the old secret keeps signing the Standard Webhooks header until the grace ends.
    previous_webhook_secret: Mapped[str | None] = mapped_column(EncryptedText(), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # The first characters of the key, safe to show ("dsk_AbC1…") so a user can tell keys apart.
    display_prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the whole key: keys are 256-bit random tokens, so a fast hash is not guessable.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
