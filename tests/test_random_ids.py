"""Ids made from the system randomness: well-formed and never repeated."""

from __future__ import annotations

import re
import uuid

from dossier.db.base import new_hex_id, new_uuid
from dossier.projects.service import new_row_id
from dossier.webhooks.models import new_message_id


def test_ids_are_well_formed_and_unique() -> None:
    uuids = [new_uuid() for _ in range(20_000)]
    assert len(set(uuids)) == len(uuids)
    for text in uuids[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    hex_ids = {new_hex_id() for _ in range(20_000)}
    assert len(hex_ids) == 20_000 and all(re.fullmatch(r"[0-9a-f]{32}", h) for h in hex_ids)
    assert re.fullmatch(r"msg_[0-9a-f]{32}", new_message_id())
    row_ids = {new_row_id() for _ in range(5_000)}
    assert len(row_ids) == 5_000 and all(re.fullmatch(r"[A-Za-z0-9]{20}", r) for r in row_ids)
