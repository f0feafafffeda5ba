"""Passive anti-spoofing (MiniFASNet). Importing this package never imports torch."""

from facerec.inference.catalogue import MINIFASNET_PACK, PACK_DIRNAME
from facerec.inference.liveness.minifasnet import DEFAULT_THRESHOLD, MiniFASNetLiveness

__all__ = [
    "DEFAULT_THRESHOLD",
    "MINIFASNET_PACK",
    "PACK_DIRNAME",
    "MiniFASNetLiveness",
]
