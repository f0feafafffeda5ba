"""Python clients of the facerec HTTP API: :class:`FaceRecClient` (blocking) and
:class:`AsyncFaceRecClient` (asyncio), both on httpx, typed with the API's own response models."""

from facerec.client._core import BatchPerson, FaceRecApiError, ImageInput
from facerec.client.async_client import AsyncFaceRecClient
from facerec.client.sync import FaceRecClient

__all__ = ["AsyncFaceRecClient", "BatchPerson", "FaceRecApiError", "FaceRecClient", "ImageInput"]
