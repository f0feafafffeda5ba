"""facerec: self-hosted face recognition service."""

__version__ = "0.1.0"
