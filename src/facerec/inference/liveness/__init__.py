"""Passive anti-spoofing (MiniFASNet). Importing this package never imports torch."""

from facerec.inference.liveness.minifasnet import DEFAULT_THRESHOLD, MiniFASNetLiveness
from facerec.inference.liveness.pack import MINIFASNET_PACK, PACK_DIRNAME, ModelPack, PackFile

__all__ = [
    "DEFAULT_THRESHOLD",
    "MINIFASNET_PACK",
    "PACK_DIRNAME",
    "MiniFASNetLiveness",
    "ModelPack",
    "PackFile",
]
