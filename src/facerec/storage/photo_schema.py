"""SQLAlchemy Core tables of stored photos (revision 0007, facerec.domain.photos): the photos,
their tagged faces, each face's candidates and the rejected tags.

Apart from :mod:`facerec.storage.schema` (the gallery, keys, audit and migration tables) because
only the photo stores query them; they share its ``metadata``, column types and key lengths, and
the migrations create them like every other table.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Integer, LargeBinary, String, Table

from facerec.storage.schema import ID_LEN, KEY_LEN, SPACE_LEN, Json, UtcDateTime, metadata

# Stored photos (revision 0007, facerec.domain.photos): every face of a photo, tagged. Photo ids
# are tenant-qualified like person ids; no image bytes unless ``photos.store_images``. A face's
# embedding is sealed like faces.embedding (column ``photo_faces.embedding``).
photos = Table(
    "photos",
    metadata,
    Column("id", String(KEY_LEN), primary_key=True),
    Column("collection", String(KEY_LEN), nullable=False, index=True),
    Column("space", String(SPACE_LEN), nullable=True),
    Column("embedder", String(64), nullable=True),
    Column("detector", String(64), nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String(16), nullable=False),
    Column("image", LargeBinary, nullable=True),
    Column("options", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# ``status``: ``tagged`` (the assignment chose the person), ``confirmed`` (a user did) or
# ``unknown``. ``cluster_id``: the suggested new person the face belongs to; ``excluded``: never
# clustered again (a dismissed suggestion, or the tag of an erased person).
photo_faces = Table(
    "photo_faces",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column(
        "photo_id", String(KEY_LEN), ForeignKey("photos.id", ondelete="CASCADE"), nullable=False
    ),
    Column("face_index", Integer, nullable=False),
    Column("collection", String(KEY_LEN), nullable=False),
    Column("space", String(SPACE_LEN), nullable=True),
    Column("bbox", Json, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("quality", Float, nullable=False),
    Column("quality_reasons", Json, nullable=False),
    Column("reason", String(32), nullable=True),
    Column("embedding", LargeBinary, nullable=True),
    Column("person_id", String(KEY_LEN), nullable=True, index=True),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(16), nullable=False),
    Column("enrolled_face_id", String(ID_LEN), nullable=True),
    Column("cluster_id", String(ID_LEN), nullable=True, index=True),
    Column("excluded", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
)

# The top-k candidates of each face when it was tagged (ids and scores only).
photo_face_candidates = Table(
    "photo_face_candidates",
    metadata,
    Column(
        "face_id",
        String(ID_LEN),
        ForeignKey("photo_faces.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "person_id",
        String(KEY_LEN),
        ForeignKey("persons.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rank", Integer, nullable=False),
    Column("matched_face_id", String(ID_LEN), nullable=True),
    Column("similarity", Float, nullable=False),
    Column("distance", Float, nullable=False),
    Column("nearest_distance", Float, nullable=False),
    Column("faces", Integer, nullable=False),
    Column("is_match", Integer, nullable=False),
)

# "This face is not that person": kept per (photo, face index), so a re-tag of the same image
# never proposes the person again. Erasing the person deletes them (cascade).
photo_rejections = Table(
    "photo_rejections",
    metadata,
    Column(
        "photo_id", String(KEY_LEN), ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("face_index", Integer, primary_key=True),
    Column(
        "person_id", String(KEY_LEN), ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("created_at", UtcDateTime, nullable=False),
)
