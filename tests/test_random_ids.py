"""Ids made from the pooled system randomness: well-formed, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import re
import uuid

from dossier.db.base import new_hex_id, new_uuid, random_bytes
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
    assert len(random_bytes(10_000)) == 10_000  # more than the pool holds: read directly


def test_a_forked_child_does_not_hand_out_its_parents_bytes() -> None:
    new_hex_id()  # the pool now holds bytes the parent has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the next ids it makes, to the parent
        try:
            os.write(write, "".join(new_hex_id() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = "".join(new_hex_id() for _ in range(8))
    assert len(child) == 8 * 32
    assert child.decode() != parent
    assert not {child.decode()[i : i + 32] for i in range(0, 256, 32)} & {
        parent[i : i + 32] for i in range(0, 256, 32)
    }
