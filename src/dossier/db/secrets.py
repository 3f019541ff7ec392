"""Secrets at rest: column types that store a value encrypted (Fernet: AES-128-CBC + HMAC-SHA256, from
`cryptography`) with the deployment's key, and the keyring that holds that key.

Any secret column uses :class:`EncryptedText` (a string) or :class:`EncryptedJSON` (an object whose string
values are each encrypted) and reads and writes plain values; the database only ever holds ``enc1:`` +
token. The keyring belongs to the engine (``create_engine`` attaches it to the engine's dialect, which the
types receive), so two engines on two databases never mix keys.

The key comes from ``DOSSIER_SECRET_KEY`` (comma-separated: the first encrypts, every one decrypts, which is
how a key is rotated). Without it, on SQLite, a key file is created beside the database (owner-only) and
Dossier says so once; PostgreSQL requires the setting. ``dossier secrets rotate-key`` re-encrypts every
value with the first key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url

from dossier.settings import Settings

log = logging.getLogger("dossier.db")

PREFIX = "enc1:"
KEYRING_ATTRIBUTE = "dossier_keyring"


class SecretKeyError(RuntimeError):
    """The key is missing, malformed, or does not open a stored secret."""


def parse_keys(text: str) -> list[bytes]:
    """Keys from ``a,b`` or one per line; each must be a Fernet key (``dossier secrets generate-key``)."""
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    parsed: list[bytes] = []
    for key in keys:
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                "a secret key must be 32 url-safe base64-encoded bytes (make one with "
                "`dossier secrets generate-key`)"
            ) from None
        parsed.append(key.encode("ascii"))
    return parsed


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


@dataclass
class Keyring:
    """The keys of one database: ``keys[0]`` encrypts, all of them decrypt. With ``path`` (a key file) the
    keys are read again when a value does not open, so a rotation made by another process is picked up."""

    keys: list[bytes]
    path: Path | None = None
    _fernet: MultiFernet = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretKeyError("no secret key")
        self._fernet = MultiFernet([Fernet(key) for key in self.keys])

    def encrypt(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The clear value of ``stored``; a value without the prefix (written before encryption existed) is
        returned as it is."""
        if not stored.startswith(PREFIX):
            return stored
        token = stored[len(PREFIX) :].encode("ascii")
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            if self.path is None or not self._reload():
                raise SecretKeyError(
                    "a stored secret does not open with DOSSIER_SECRET_KEY (was the key changed without "
                    "keeping the previous one after a comma?)"
                ) from None
            return self.decrypt(stored)

    def rotate(self, stored: str) -> str:
        """``stored`` encrypted with the first key (a clear value is encrypted)."""
        if not stored.startswith(PREFIX):
            return self.encrypt(stored)
        token = stored[len(PREFIX) :].encode("ascii")
        try:
            return PREFIX + self._fernet.rotate(token).decode("ascii")
        except InvalidToken:
            raise SecretKeyError("a stored secret does not open with any configured key") from None

    def opens_with_first(self, stored: str) -> bool:
        if not stored.startswith(PREFIX):
            return False
        try:
            Fernet(self.keys[0]).decrypt(stored[len(PREFIX) :].encode("ascii"))
        except InvalidToken:
            return False
        return True

    def _reload(self) -> bool:
        assert self.path is not None
        try:
            keys = parse_keys(self.path.read_text())
        except OSError:
            return False
        if keys == self.keys:
            return False
        self.keys = keys
        self.__post_init__()
        return True


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database or another store."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        return None
    return Path(url.database)


def key_file_for(database: Path) -> Path:
    """Where the key of a SQLite database without DOSSIER_SECRET_KEY lives: ``x.db`` -> ``x.db.key``."""
    return database.with_name(database.name + ".key")


def write_key_file(path: Path, keys: Iterable[bytes]) -> None:
    """Write the keys (first encrypts) to ``path``, readable by its owner only, atomically."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(key.decode("ascii") for key in keys) + "\n")
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def keyring_for(settings: Settings) -> Keyring:
    """The keyring of ``settings``' database: DOSSIER_SECRET_KEY; else, on SQLite, the key file beside the
    database (created on first use, owner-only, announced once in the log); PostgreSQL requires the key."""
    if settings.secret_key is not None:
        return Keyring(parse_keys(settings.secret_key.get_secret_value()))
    if not settings.is_sqlite:
        raise SecretKeyError(
            "DOSSIER_SECRET_KEY is required with PostgreSQL: it encrypts webhook secrets and endpoint "
            "credentials at rest. Make one with `dossier secrets generate-key`, keep it safe, and give the "
            "same value to every Dossier process (docs/operations.md)."
        )
    database = sqlite_path(settings.database_url)
    if database is None:
        # An in-memory database lives as long as the process; so does its key.
        return Keyring([Fernet.generate_key()])
    path = key_file_for(database.resolve())
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        except OSError as exc:
            raise SecretKeyError(f"cannot create the secret key file {path}: {exc.strerror}") from None
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode("ascii") + "\n")
            log.warning(
                "created the secret key file %s (owner-only): it encrypts webhook secrets at rest; back it "
                "up with the database, or set DOSSIER_SECRET_KEY instead",
                path,
                extra={"key_file": str(path)},
            )
    return Keyring(parse_keys(path.read_text()), path=path)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring = getattr(dialect, KEYRING_ATTRIBUTE, None)
    if keyring is None:
        raise SecretKeyError("this engine has no secret key: make it with dossier.db.engine.create_engine")
    assert isinstance(keyring, Keyring)
    return keyring


class EncryptedText(TypeDecorator[str]):
    """A string stored encrypted; reads and writes the clear value."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).decrypt(value)


class EncryptedJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object whose string values are each stored encrypted (keys and other values stay readable)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        # The column's type is unchanged: JSON on SQLite, JSONB on PostgreSQL (like db.base.JSONType).
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Mapping[str, Any] | None, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        keyring = keyring_of(dialect)
        return {k: keyring.encrypt(v) if isinstance(v, str) else v for k, v in value.items()}

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        keyring = keyring_of(dialect)
        return {k: keyring.decrypt(v) if isinstance(v, str) else v for k, v in dict(value).items()}


# --- re-encrypting stored values (the migration that encrypts clear values, and key rotation) -------------

# (table, primary key column, secret column, "text" | "json")
SecretColumn = tuple[str, str, str, str]


def secret_columns(metadata: Any) -> list[SecretColumn]:
    """Every column of ``metadata`` stored with an encrypted type (so a new secret column is rotated too)."""
    found: list[SecretColumn] = []
    for table in metadata.sorted_tables:
        encrypted = [c for c in table.columns if isinstance(c.type, EncryptedText | EncryptedJSON)]
        if not encrypted:
            continue
        [key] = list(table.primary_key.columns)  # secret tables have a one-column primary key
        for column in encrypted:
            kind = "json" if isinstance(column.type, EncryptedJSON) else "text"
            found.append((table.name, key.name, column.name, kind))
    return found


def reencrypt(connection: Any, columns: Iterable[SecretColumn], convert: Callable[[str], str]) -> int:
    """Apply ``convert`` to every stored string of ``columns`` (raw, as stored) on a synchronous connection
    inside the caller's transaction; returns how many values changed."""
    import json

    from sqlalchemy import text

    changed = 0
    for table, key, column, kind in columns:
        rows = connection.execute(text(f"SELECT {key}, {column} FROM {table}")).all()
        for row_key, value in rows:
            if value is None:
                continue
            if kind == "json":
                data = json.loads(value) if isinstance(value, str) else dict(value)
                new = {k: convert(v) if isinstance(v, str) else v for k, v in data.items()}
                if new == data:
                    continue
                cast = "CAST(:value AS JSONB)" if connection.dialect.name == "postgresql" else ":value"
                connection.execute(
                    text(f"UPDATE {table} SET {column} = {cast} WHERE {key} = :key"),
                    {"value": json.dumps(new), "key": row_key},
                )
                changed += sum(1 for k in data if data[k] != new[k])
            else:
                converted = convert(value)
                if converted != value:
                    connection.execute(
                        text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key"),
                        {"value": converted, "key": row_key},
                    )
                    changed += 1
    return changed
