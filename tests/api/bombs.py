"""A malformed-image corpus, generated: decompression bombs of every format and bit depth the
decoder accepts (small files with huge declared or real dimensions), truncations, EXIF oddities
and polyglots. Shared by tests/api/test_limits.py and bench/bench_limits.py."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.images import encode

# Over the default memory bound (200 MB) once decoded, under the default pixel limit (40 MP).
MEMORY_BOMB_SIDE = 6000
# Over the default pixel limit.
PIXEL_BOMB_SIDE = 20000


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    color_type: int = 2,
    rows: int | None = None,
) -> bytes:
    """A PNG of zero pixels, ``rows`` of them really encoded (all by default: a real bomb, which
    zlib squeezes to a few KB), the rest missing (a header bomb / truncation)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height if rows is None else rows)]
    idat = b"".join(parts) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr)
    if color_type == 3:
        body += _chunk(b"PLTE", bytes(range(48)))
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A small JPEG whose frame header (SOF) claims ``width`` x ``height``."""
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8), "JPEG", progressive=progressive))
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    at = data.index(marker)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_claiming(width: int, height: int, *, bits: int = 8, samples: int = 3) -> bytes:
    """An uncompressed little-endian TIFF claiming ``width`` x ``height`` with 100 data bytes."""
    entries: list[tuple[int, int, int, int]] = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, bits),  # one value: the same for every sample
        (259, 3, 1, 1),
        (262, 3, 1, 2 if samples >= 3 else 1),
        (273, 4, 1, 8),
        (277, 3, 1, samples),
        (278, 4, 1, height),
        (279, 4, 1, 100),
    ]
    ifd_at = 8 + 100
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", ifd_at) + b"\x00" * 100 + ifd + b"\x00\x00\x00\x00"


def bmp_claiming(width: int, height: int, *, bits: int = 24, rle: bool = False) -> bytes:
    """A BMP whose info header claims ``width`` x ``height`` (RLE8 when ``rle``)."""
    data = bytearray(encode(Image.new("P" if rle else "RGB", (16, 16)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    struct.pack_into("<H", data, 28, 8 if rle else bits)
    struct.pack_into("<I", data, 30, 1 if rle else 0)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless WEBP whose VP8L header claims ``width`` x ``height`` (at most 16384)."""
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8), "WEBP", lossless=True))
    bits = int.from_bytes(data[21:25], "little")
    bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("P", (16, 16)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def bombs() -> dict[str, bytes]:
    """Every format and bit depth, each over the memory bound, the pixel limit, or both."""
    m, p = MEMORY_BOMB_SIDE, PIXEL_BOMB_SIDE
    return {
        # Real bombs: every row present, a few KB of zlib.
        "png 1-bit 20000² real": png(p, p, bit_depth=1, color_type=0),
        "png palette 6000² real": png(m, m, color_type=3),
        # Header bombs, every colour type and depth.
        "png gray 8-bit": png(m, m, color_type=0, rows=4),
        "png gray 16-bit": png(m, m, bit_depth=16, color_type=0, rows=4),
        "png rgb 8-bit": png(m, m, rows=4),
        "png rgb 16-bit": png(m, m, bit_depth=16, rows=4),
        "png gray+alpha 16-bit": png(m, m, bit_depth=16, color_type=4, rows=4),
        "png rgba 8-bit": png(m, m, color_type=6, rows=4),
        "png rgba 16-bit": png(m, m, bit_depth=16, color_type=6, rows=4),
        "png rgba 20000²": png(p, p, color_type=6, rows=1),
        "jpeg baseline 65000²": jpeg_claiming(65000, 65000),
        "jpeg progressive 6000²": jpeg_claiming(m, m, progressive=True),
        "tiff rgb 8-bit": tiff_claiming(m, m),
        "tiff rgb 16-bit": tiff_claiming(m, m, bits=16),
        "tiff rgba 16-bit": tiff_claiming(m, m, bits=16, samples=4),
        "tiff gray 20000²": tiff_claiming(p, p, samples=1),
        "bmp 24-bit": bmp_claiming(m, m),
        "bmp 32-bit": bmp_claiming(m, m, bits=32),
        "bmp rle8": bmp_claiming(m, m, rle=True),
        "bmp 20000²": bmp_claiming(p, p),
        "webp 16384²": webp_claiming(16384, 16384),
        "webp 6000²": webp_claiming(m, m),
        "gif 65535²": gif_claiming(65535, 65535),
    }


def _valid(fmt: str) -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (64, 80, 3), np.uint8)
    return encode(pixels, fmt)


def truncations() -> dict[str, bytes]:
    cases = {}
    for fmt in ("JPEG", "PNG", "TIFF", "BMP", "WEBP"):
        data = _valid(fmt)
        for cut in (12, 40, len(data) // 2, len(data) - 8):
            cases[f"{fmt.lower()} cut at {cut}"] = data[:cut]
    return cases


def with_exif(orientation: int, *, padding: int = 0, as_text: bool = False) -> bytes:
    image = Image.fromarray(np.full((48, 64, 3), 180, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    if padding:
        exif[0x010E] = "x" * padding  # ImageDescription: a huge EXIF block
    raw = exif.tobytes()
    if as_text:  # the orientation entry retyped as ASCII "six"
        order = "<" if raw[6:8] == b"II" else ">"
        entry = struct.pack(order + "HHIH", 0x0112, 3, 1, orientation) + b"\x00\x00"
        assert entry in raw
        raw = raw.replace(entry, struct.pack(order + "HHI", 0x0112, 2, 4) + b"six\x00")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=raw)
    return buffer.getvalue()


def exif_oddities() -> dict[str, bytes]:
    cases = {f"orientation {o}": with_exif(o) for o in range(10)}
    cases["orientation 65535"] = with_exif(65535)
    cases["orientation as text"] = with_exif(6, as_text=True)
    cases["huge exif block"] = with_exif(6, padding=60_000)
    broken = bytearray(with_exif(6))
    at = broken.index(b"Exif\x00\x00")
    broken[at + 6 : at + 14] = b"MM\x00*\xff\xff\xff\xf0"  # IFD offset far outside the block
    cases["exif pointing outside"] = bytes(broken)
    return cases


def polyglots() -> dict[str, bytes]:
    zip_tail = b"PK\x03\x04" + b"\x00" * 26 + b"evil.txt" + b"PK\x05\x06" + b"\x00" * 18
    return {
        "png with zip appended": _valid("PNG") + zip_tail,
        "html with jpeg header": b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>",
        "jpeg header then png": b"\xff\xd8\xff" + _valid("PNG"),
        "svg in png clothes": b"\x89PNG\r\n\x1a\n<svg xmlns='http://www.w3.org/2000/svg'/>",
    }


def corpus() -> dict[str, bytes]:
    return {**bombs(), **truncations(), **exif_oddities(), **polyglots()}
