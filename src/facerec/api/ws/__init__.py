"""WebSocket routes: ``/ws/recognize`` (live video)."""

from facerec.api.ws.recognize import router

__all__ = ["router"]
