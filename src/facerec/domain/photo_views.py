"""What the photo use cases answer: a stored photo with the persons it names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from facerec.domain.identification import Match
from facerec.domain.open_set import OperatingPoint
from facerec.storage.photo_records import Photo, PhotoFace
from facerec.values import Person


@dataclass(frozen=True)
class PhotoView:
    """A stored photo with the records of the persons it names (erased ones are absent)."""

    photo: Photo
    persons: Mapping[str, Person]
    point: OperatingPoint | None = None  # set when the photo was (re-)tagged by this request

    def candidates(self, face: PhotoFace, top_k: int) -> list[Match]:
        """The face's candidates, best first, without rejected or erased persons."""
        kept = [
            c
            for c in face.candidates
            if c.person_id not in face.rejected and c.person_id in self.persons
        ][:top_k]
        return [
            Match(
                person_id=c.person_id,
                person=self.persons[c.person_id],
                face_id=c.matched_face_id,
                distance=c.distance,
                nearest_distance=c.nearest_distance,
                faces=c.faces,
                similarity=c.similarity,
                margin=c.similarity - kept[i + 1].similarity if i + 1 < len(kept) else None,
                is_match=c.is_match,
            )
            for i, c in enumerate(kept)
        ]

    def person(self, face: PhotoFace) -> Person | None:
        return self.persons.get(face.person_id) if face.person_id else None

    def similarity(self, face: PhotoFace) -> float | None:
        return next((c.similarity for c in face.candidates if c.person_id == face.person_id), None)
