"""Image input: a path, encoded bytes or a numpy array → one H×W×3 uint8 RGB array, or an InputError refusing it.

Every model sees pixels through `load_rgb`, so this is where "the same input gives the same pixels on every machine"
is decided. Decoding is Pillow only (one pinned decoder stack: its JPEG, PNG, GIF, WebP, BMP and TIFF readers, never
OpenCV's separately built codecs), and nothing here resamples or uses floating point: every step below is integer
arithmetic (Pillow's integer conversions, or numpy on integers) or a lossless pixel permutation.

The conversion rule, applied identically to decoded files and to arrays (files are first reduced by Pillow to the array
forms named in brackets, then both go through the same numpy code):

1. Format: JPEG (and MPO, the multi-picture JPEG phones write), PNG (and APNG), GIF, WebP, BMP, TIFF. Anything else
   (PSD, EPS, ICO, PPM, JPEG 2000, ...) is refused: a small decoder surface, and no format that runs external programs.
2. Size, checked from the header BEFORE any pixel data is decoded, and on the array's shape: width × height above
   `max_pixels` (default 40 megapixels) → ImageTooLargeError; the shorter side below `min_side` (default 32 px) →
   ImageTooSmallError. Files larger than `max_bytes` (default 128 MiB) are refused before they are read. Pillow's
   own bomb guard (2 × Image.MAX_IMAGE_PIXELS, ~179 MP) still applies above that: a larger max_pixels cannot lift it.
3. Animation: animated GIF / APNG / WebP and multi-picture MPO / multi-page TIFF give their first frame (frame 0 as
   Pillow opens it), the still image a viewer without animation support shows. Refusing would reject ordinary uploads
   for being saved by an animating tool; later frames are never decoded.
4. Orientation: the EXIF Orientation tag (or XMP tiff:Orientation, as Pillow reads it) is applied with exactly the
   transpositions of PIL.ImageOps.exif_transpose, so the array is upright as a viewer shows it. An EXIF block Pillow
   cannot parse counts as orientation 1 (as if absent): it is metadata, and the pixels are still decodable.
5. Pixel modes → RGB:
   - RGB as is; L (8-bit grey) [H×W or H×W×1] → R = G = B = L; 1-bit → 0 / 255 grey.
   - P (palette), CMYK, YCbCr, RGBX → RGB by Pillow's integer conversions (CMYK without an ICC profile).
   - Alpha (RGBA, LA, PA, premultiplied RGBa, a palette with alpha, a PNG/GIF transparency key) [H×W×4 RGBA] is
     composited over WHITE: out = (c·a + 255·(255 − a) + 127) // 255, exact integer rounding. White because ID
     photos and documents are shot on light backgrounds and viewers show transparency on a white page: black would
     draw a dark halo around a cut-out face or card that the camera never saw.
   - 16-bit samples (PNG/TIFF I;16*, uint16 arrays) → 8-bit by a right shift of 8 (keep the high byte): exact,
     monotonic, and what Pillow's own PNG reader already does for 16-bit RGB(A). A 16-bit grey transparency key makes
     matching pixels white, as compositing with alpha 0 would.
   - 32-bit integer grey (TIFF mode I) → clipped to 0..65535, then the 16-bit rule: 32-bit grey in TIFF is almost
     always 16-bit data in a wider container.
   - Refused (UnsupportedImageError): floating point (TIFF mode F, float arrays), LAB, and any other mode; arrays
     that are not uint8/uint16 or not H×W, H×W×1, H×W×3 or H×W×4 (two channels is ambiguous, five is not an image).
   - Embedded ICC colour profiles are ignored: colour management is float arithmetic (LittleCMS) nothing here pins.
6. Output: a new, writeable, C-contiguous H×W×3 uint8 array (never a view of the caller's array).

Hostile input raises InputError (a ValueError) and nothing else: unrecognised or corrupt data, truncated files (Pillow's
LOAD_TRUNCATED_IMAGES stays False: a cut-off upload is refused, not padded with grey), decompression bombs (refused from
the header; Pillow's own DecompressionBombError / Warning become ImageTooLargeError), JPEGs with more scans than any
camera writes (each scan re-walks the whole image: thousands of tiny scans would take minutes). No Pillow global
(LOAD_TRUNCATED_IMAGES, MAX_IMAGE_PIXELS, warning filters) is changed: this module is imported by long-lived services.

No TensorFlow here: this module must stay importable before veid_ml.determinism.configure().
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from typing import Union

import numpy as np
from PIL import Image

DEFAULT_MIN_SIDE = 32
DEFAULT_MAX_PIXELS = 40_000_000
# 40 MP of uncompressed 8-bit RGB (a scanner's TIFF or BMP) is 120 MB: the largest honest file within max_pixels.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
# Cameras write 1 to ~20 scans, an MPO a few JPEGs' worth; each extra scan costs a walk over every block.
MAX_JPEG_SCANS = 500
# Pillow format ids Image.open may try, most common first. MPO (a phone JPEG with an MPF block) has no opener of its
# own: the JPEG opener returns it, with img.format == "MPO".
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP or TIFF"

# EXIF Orientation → transposition: the table of PIL.ImageOps.exif_transpose (tests/test_images.py checks they agree).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
# Modes Pillow turns into RGB with integer table look-ups; anything with alpha goes through RGBA instead.
_PIL_TO_RGB = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
_PIL_ALPHA = ("LA", "PA", "RGBA", "RGBa")
_PIL_WIDE = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Rows per compositing block: about a megapixel, so a 40 MP RGBA image needs ~6 MB of temporaries, not ~500 MB.
_BLOCK_PIXELS = 1 << 20

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]


class InputError(ValueError):
    """An image input that cannot be used. str(): "<the input>: <the problem>", e.g. "bytes (0 bytes): is empty".

    `source` names the input (a path, "bytes (N bytes)" or an array's shape and dtype), `problem` what is wrong, and
    `reason` is a stable machine-readable code for API responses.
    """

    reason = "invalid_image"

    def __init__(self, source: str, problem: str):
        super().__init__(source, problem)  # args stay (source, problem): the error pickles across processes
        self.source = source
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"


class UnreadableImageError(InputError):
    """Missing, empty, not an image, truncated or corrupt."""

    reason = "image_unreadable"


class UnsupportedImageError(InputError):
    """A readable input this layer does not accept: another format, a float or LAB image, a wrong array shape."""

    reason = "image_unsupported"


class ImageTooLargeError(InputError):
    """More pixels than max_pixels (or bytes than max_bytes): refused before decoding."""

    reason = "image_too_large"


class ImageTooSmallError(InputError):
    """The shorter side is below min_side: too few pixels for a face or a document."""

    reason = "image_too_small"


def load_rgb(image: ImageInput, *, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """`image` (a path, encoded bytes, or a uint8/uint16 array) as a new C-contiguous H×W×3 uint8 RGB array.

    Follows the conversion rule in this module's docstring; any unusable input raises an InputError subclass.
    """
    for name, value in (("min_side", min_side), ("max_pixels", max_pixels), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")  # a caller's bug, not bad input
    if isinstance(image, np.ndarray):
        return _from_array(image, min_side, max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        source = f"bytes ({len(data)} bytes)"
        if len(data) > max_bytes:
            raise ImageTooLargeError(source, f"is larger than the {max_bytes}-byte limit")
        return _decode(data, source, min_side, max_pixels)
    if isinstance(image, (str, os.PathLike)):
        source, data = _read_file(image, max_bytes)
        return _decode(data, source, min_side, max_pixels)
    raise UnsupportedImageError(f"input of type {type(image).__name__}",
                                "is not an image: pass a file path, encoded image bytes or a numpy array")


def image_digest(array: np.ndarray) -> str:
    """sha256 hex of an array's dtype, shape and C-order bytes: equal digests mean identical pixels (golden tests)."""
    array = np.asarray(array)
    h = hashlib.sha256(f"{array.dtype.str}:{'x'.join(map(str, array.shape))}:".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def _read_file(path: str | os.PathLike, max_bytes: int) -> tuple[str, bytes]:
    """(source label, the file's bytes); every way a path can fail becomes UnreadableImageError."""
    try:
        name = os.fsdecode(path)
    except (TypeError, ValueError):  # a PathLike whose __fspath__ returns junk
        raise UnsupportedImageError(f"input of type {type(path).__name__}", "is not a usable file path") from None
    source = f"file {name}"
    if not name:
        raise UnreadableImageError("file ''", "the path is empty")
    try:
        st = os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        raise UnreadableImageError(source, "does not exist") from None
    except PermissionError:
        raise UnreadableImageError(source, "cannot be read: permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise UnreadableImageError(source, f"cannot be read: {_plain(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableImageError(source, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):  # FIFOs and devices could block or never end
        raise UnreadableImageError(source, "is not a regular file")
    if st.st_size > max_bytes:
        raise ImageTooLargeError(source, f"is {st.st_size} bytes, more than the {max_bytes}-byte limit")
    try:
        with open(name, "rb") as f:
            data = f.read(max_bytes + 1)  # +1: a file that grew since stat is still caught
    except PermissionError:
        raise UnreadableImageError(source, "cannot be read: permission denied") from None
    except OSError as exc:
        raise UnreadableImageError(source, f"cannot be read: {_plain(exc)}") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError(source, f"is more than the {max_bytes}-byte limit")
    return source, data


def _plain(exc: BaseException) -> str:
    """An OS error's text without the errno/path decoration of its str()."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _check_size(source: str, width: int, height: int, min_side: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(source, f"is {width}x{height} pixels, more than the {max_pixels}-pixel limit")
    if min(width, height) < min_side:
        raise ImageTooSmallError(source, f"is {width}x{height} pixels; both sides must be at least {min_side} px")


def _decode(data: bytes, source: str, min_side: int, max_pixels: int) -> np.ndarray:
    if not data:
        raise UnreadableImageError(source, "is empty (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Warning: when filters raise it
        raise _pillow_bomb(source, exc, max_pixels) from None
    except Image.UnidentifiedImageError:
        raise UnreadableImageError(source, f"is not a {_FORMAT_NAMES} image (unrecognised or corrupt header)") from None
    except Exception as exc:  # Pillow's header parsers raise many types on junk; all mean the same to the caller
        raise UnreadableImageError(source, "has a corrupt or oversized image header") from exc
    with img:
        fmt = img.format or "image"
        _check_size(source, img.width, img.height, min_side, max_pixels)
        if fmt in ("JPEG", "MPO"):
            # SOS markers: entropy-coded data never holds FF DA (FF is stuffed as FF 00), so this over-counts only
            # through embedded JPEGs (EXIF thumbnails, MPO frames), which the limit leaves room for.
            scans = data.count(b"\xff\xda")
            if scans > MAX_JPEG_SCANS:
                raise UnsupportedImageError(source, f"is a JPEG with {scans} scans, more than the {MAX_JPEG_SCANS} "
                                                    f"allowed (no camera writes that many; each costs a full pass)")
        try:
            native = _pil_to_native(img, source)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _pillow_bomb(source, exc, max_pixels) from None
        except Exception as exc:  # OSError "image file is truncated", SyntaxError, zlib/struct errors, MemoryError...
            raise UnreadableImageError(source, f"is truncated or corrupt ({fmt} data could not be decoded)") from exc
    # The rotated frame can be another size only by swapping sides: the checks above still hold.
    return _native_to_rgb(native, source)


def _pillow_bomb(source: str, exc: Exception, max_pixels: int) -> ImageTooLargeError:
    """Pillow's own bomb guard fired (before our header check could run): the same message, its pixel count."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    if found is None:
        return ImageTooLargeError(source, "declares more pixels than Pillow's decompression-bomb limit")
    pixels = int(found[1])
    limit = f"the {max_pixels}-pixel limit" if pixels > max_pixels else "Pillow's decompression-bomb limit"
    return ImageTooLargeError(source, f"declares {pixels} pixels, more than {limit}")


def _pil_to_native(img: Image.Image, source: str) -> np.ndarray:
    """Decode frame 0, apply the EXIF orientation, and reduce it to an array form `_native_to_rgb` takes."""
    img.load()
    mode = img.mode
    if mode not in _PIL_TO_RGB and mode not in _PIL_ALPHA and mode not in _PIL_WIDE:
        kind = "floating-point" if mode == "F" else f"{mode}-mode"
        raise UnsupportedImageError(source, f"is a {kind} {img.format or ''} image; only integer RGB, grey, "
                                            f"palette, CMYK and YCbCr images (with or without alpha) are accepted")
    method = _ORIENTATION.get(_exif_orientation(img))
    if method is not None:
        img = _replace(img, img.transpose(method))
    if mode in _PIL_WIDE:
        wide = np.asarray(img)
        if mode == "I":
            wide = np.clip(wide, 0, 65535)  # 32-bit grey: 16-bit data in a wider container (module docstring)
        key = img.info.get("transparency")
        if isinstance(key, int) and not isinstance(key, bool):
            # A 16-bit grey transparency key: matching pixels become white, what alpha 0 composites to.
            rgba = np.empty(wide.shape + (4,), np.uint16)
            rgba[..., :3] = wide[..., None]
            rgba[..., 3] = np.where(wide == key, 0, 0xFFFF)
            return rgba
        return wide.astype(np.uint16)
    if mode in _PIL_ALPHA or img.has_transparency_data:
        return np.asarray(img if mode == "RGBA" else _replace(img, img.convert("RGBA")))
    if mode in ("L", "RGB"):
        return np.asarray(img)
    return np.asarray(_replace(img, img.convert("RGB")))


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """new, after freeing old's pixels now rather than at the caller's exit: one full-size copy alive, not two."""
    old.close()
    return new


def _exif_orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # unparsable EXIF is ignored like absent EXIF: metadata must not make pixels unreadable
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION else 1


def _from_array(array: np.ndarray, min_side: int, max_pixels: int) -> np.ndarray:
    array = np.asarray(array)  # np.matrix / masked arrays → a plain ndarray view (a matrix cannot grow a 3rd axis)
    source = f"array (shape {tuple(array.shape)}, dtype {array.dtype})"
    if array.dtype.kind != "u" or array.dtype.itemsize not in (1, 2):
        raise UnsupportedImageError(source, "has an unsupported dtype; image arrays must be uint8 or uint16")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise UnsupportedImageError(source, "has an unsupported shape; image arrays must be H×W (grey), H×W×1, "
                                            "H×W×3 (RGB) or H×W×4 (RGBA)")
    height, width = array.shape[:2]
    _check_size(source, width, height, min_side, max_pixels)
    return _native_to_rgb(array, source)


def _native_to_rgb(array: np.ndarray, source: str) -> np.ndarray:
    """The shared numpy half of the rule: 16→8 bit, grey → RGB, alpha over white; always a new C-contiguous array."""
    if array.dtype.itemsize == 2:
        array = (array >> 8).astype(np.uint8)  # keep the high byte: exact integer 16 → 8 bit
    elif array.dtype != np.uint8:
        raise UnsupportedImageError(source, f"decoded to unsupported {array.dtype} samples")  # unreachable by design
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)  # repeat allocates a fresh C-contiguous array
    if array.shape[2] == 3:
        return np.array(array, dtype=np.uint8, order="C", copy=True)
    return _over_white(array)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 composited over white with exact integer rounding, a block of rows at a time."""
    height, width = rgba.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _BLOCK_PIXELS // max(1, width))
    for top in range(0, height, rows):
        block = rgba[top:top + rows]
        alpha = block[..., 3:4].astype(np.uint16)
        colour = block[..., :3].astype(np.uint16)
        # c·a + 255·(255 − a) ≤ 255·255, so + 127 still fits uint16 (65152 < 65536).
        out[top:top + rows] = ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    return out
