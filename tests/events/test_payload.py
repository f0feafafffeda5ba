"""No event carries an image or an embedding, whoever publishes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import numpy as np
import pytest

from facerec.events.bus import IDENTIFICATION, Event, EventBus
from facerec.events.payload import UnsafeEventDataError, clean_data, is_forbidden_key


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def deliver(self, event: Event) -> None:
        self.events.append(event)

    async def close(self) -> None:
        pass


def test_image_and_embedding_keys_are_dropped_at_any_depth() -> None:
    data = {
        "person_id": "p1",
        "image": "aGVsbG8=",
        "embedding": [0.1, 0.2],
        "Vector": [1.0],
        "face": {"bbox": {"x1": 1.0}, "face_image_base64": "x", "probe_embedding": [0.3]},
        "matches": [{"person_id": "p2", "templates": [[0.1]], "thumbnail": "x"}],
    }
    assert clean_data(data) == {
        "person_id": "p1",
        "face": {"bbox": {"x1": 1.0}},
        "matches": [{"person_id": "p2"}],
    }


@pytest.mark.parametrize("key", ["image", "IMAGE", "face_image", "probe-embedding", "vectors"])
def test_forbidden_keys(key: str) -> None:
    assert is_forbidden_key(key)


@pytest.mark.parametrize("key", ["person_id", "frame", "imagined", "bbox", "similarity"])
def test_allowed_keys(key: str) -> None:
    assert not is_forbidden_key(key)


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xd8\xff",
        bytearray(b"abc"),
        memoryview(b"abc"),
        np.zeros((2, 2), np.uint8),
        np.zeros(128, np.float32),
        [0.1] * 128,  # an embedding as a plain list
        "data:image/jpeg;base64,/9j/4AAQ",
        "A" * 10_000,  # an encoded image without its data: prefix
        object(),
    ],
    ids=["bytes", "bytearray", "memoryview", "image", "array", "list", "data-url", "long", "obj"],
)
def test_face_data_under_any_name_is_rejected(value: Any) -> None:
    with pytest.raises(UnsafeEventDataError):
        clean_data({"harmless_name": {"deep": value}})


def test_values_become_plain_json() -> None:
    class Kind(Enum):
        KNOWN = "known"

    person = uuid.uuid4()
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    cleaned = clean_data(
        {
            "similarity": np.float32(0.75),
            "count": np.int64(3),
            "live": np.bool_(True),
            "person": person,
            "seen": at,
            "kind": Kind.KNOWN,
            "bbox": (1, 2, 3, 4),
            "nan": float("nan"),
        }
    )
    assert cleaned == {
        "similarity": 0.75,
        "count": 3,
        "live": True,
        "person": str(person),
        "seen": at.isoformat(),
        "kind": "known",
        "bbox": [1, 2, 3, 4],
        "nan": None,
    }
    assert type(cleaned["similarity"]) is float and type(cleaned["count"]) is int


async def test_the_bus_enforces_it() -> None:
    sink = Recorder()
    bus = EventBus([sink])
    bus.start()
    bus.publish(Event(IDENTIFICATION, "t", "c", {"person_id": "p", "embedding": [0.1] * 128}))
    bus.publish(Event(IDENTIFICATION, "t", "c", {"person_id": "p", "crop": np.zeros((8, 8, 3))}))
    bus.publish(Event(IDENTIFICATION, "t", "c", {"person_id": "p", "face": b"\x89PNG"}))
    await bus.drain()
    await bus.close()
    assert [event.data for event in sink.events] == [{"person_id": "p"}]
    assert bus.published == 1 and bus.rejected == 2
