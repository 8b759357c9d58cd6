"""veid_ml.images: the conversion rule (files and arrays alike), hostile inputs, and a seeded fuzz of encoded bytes."""

import faulthandler
import io
import os
import random
import struct
import subprocess
import sys
import time
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from veid_ml import images
from veid_ml.images import (ImageTooLargeError, ImageTooSmallError, InputError, UnreadableImageError,
                            UnsupportedImageError, image_digest, load_rgb)

PILLOW_MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS
PILLOW_LOAD_TRUNCATED = ImageFile.LOAD_TRUNCATED_IMAGES
FUZZ_SEED = 20240611
FUZZ_CASES = 5000


# --- encoders ------------------------------------------------------------------------------------------------------

def encode(image, fmt: str, **kwargs) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes, extra: bytes = b"") -> bytes:
    """A PNG from its parts; `idat` is the already-compressed stream (so a header may lie about what follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png16(samples: np.ndarray, extra: bytes = b"") -> bytes:
    """A 16-bit PNG of a uint16 H×W (grey), H×W×3 (RGB) or H×W×4 (RGBA) array: what Pillow cannot write itself."""
    colour_type = {2: 0, 3: 2, 4: 6}[samples.ndim if samples.ndim == 2 else samples.shape[2]]
    rows = samples.reshape(samples.shape[0], -1).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    return raw_png(samples.shape[1], samples.shape[0], 16, colour_type, zlib.compress(raw), extra)


def bomb_png(side: int, full: bool = False) -> bytes:
    """A 1-bit grey PNG declaring side×side pixels. full: the whole zlib stream of zero rows (~110 kB for 30000²,
    2.7 GB as RGB), streamed row block by row block so building it stays memory-light; else a stub stream."""
    row = bytes(1 + (side + 7) // 8)
    if not full:
        return raw_png(side, side, 1, 0, zlib.compress(row * 4))
    packer = zlib.compressobj(9)
    block = row * 1000
    stream = b"".join(packer.compress(block) for _ in range(side // 1000)) + packer.compress(row * (side % 1000))
    return raw_png(side, side, 1, 0, stream + packer.flush())


def pattern(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    """An asymmetric RGB test pattern: every orientation mistake shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def exif_with_orientation(orientation: int, junk: int = 0) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if junk:
        exif[0x010E] = "J" * junk  # ImageDescription: tens of kB of text, the "huge EXIF block"
    return exif.tobytes()


def jpeg_with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """jpeg with an APP1 segment holding payload inserted right after SOI."""
    assert jpeg[:2] == b"\xff\xd8" and len(payload) + 2 <= 0xFFFF
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def check_rgb(out: np.ndarray, height: int, width: int) -> None:
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (height, width, 3)
    assert out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]


def over_white_reference(c: int, a: int) -> int:
    """(c·a + 255·(255−a)) / 255 rounded half up, in exact rational arithmetic."""
    value = Fraction(c * a + 255 * (255 - a), 255)
    return int(value + Fraction(1, 2))


# --- the contract's basic shape ------------------------------------------------------------------------------------

def test_path_str_pathlib_bytes_and_array_give_the_same_pixels(tmp_path):
    array = pattern()
    data = encode(array, "PNG")
    path = tmp_path / "face.png"
    path.write_bytes(data)
    results = [load_rgb(str(path)), load_rgb(path), load_rgb(data), load_rgb(bytearray(data)),
               load_rgb(memoryview(data)), load_rgb(array)]
    for out in results:
        check_rgb(out, 40, 48)
        assert np.array_equal(out, array)
    assert len({image_digest(out) for out in results}) == 1


def test_output_is_a_new_array_never_a_view_of_the_input():
    array = pattern()
    out = load_rgb(array)
    assert not np.shares_memory(out, array)
    out[:] = 0
    assert array.any()


def test_non_contiguous_and_foreign_order_arrays():
    array = pattern()
    grey = array[..., 0]
    assert np.array_equal(load_rgb(np.ma.masked_array(grey)), load_rgb(grey))  # ndarray subclasses too
    for view in (array[:, ::-1], array[::-1], np.asfortranarray(array), array.transpose(1, 0, 2)):
        out = load_rgb(view)
        assert out.flags["C_CONTIGUOUS"]
        assert np.array_equal(out, np.ascontiguousarray(view))


def test_jpeg_decoding_is_deterministic():
    data = encode(pattern(64, 80), "JPEG", quality=85)
    digests = {image_digest(load_rgb(data)) for _ in range(3)}
    assert len(digests) == 1


def test_image_digest_covers_dtype_shape_and_bytes():
    zeros = np.zeros((2, 3, 3), np.uint8)
    assert image_digest(zeros) == image_digest(zeros.copy())
    assert image_digest(zeros) != image_digest(zeros.reshape(3, 2, 3))
    assert image_digest(zeros) != image_digest(zeros.astype(np.uint16))
    other = zeros.copy()
    other[1, 2, 0] = 1
    assert image_digest(zeros) != image_digest(other)
    assert image_digest(np.asfortranarray(pattern())) == image_digest(pattern())


# --- the conversion rule: files and arrays alike -------------------------------------------------------------------

def test_grey_files_and_arrays_replicate_into_rgb():
    grey = pattern()[..., 0]
    expected = np.repeat(grey[..., None], 3, axis=2)
    for source in (grey, grey[..., None], encode(grey, "PNG"), encode(grey, "BMP"), encode(grey, "TIFF")):
        assert np.array_equal(load_rgb(source), expected)


def test_one_bit_images_become_black_and_white():
    bits = pattern()[..., 0] > 127
    data = encode(Image.fromarray(bits).convert("1"), "PNG")
    out = load_rgb(data)
    assert set(np.unique(out)) == {0, 255}
    assert np.array_equal(out[..., 0] == 255, bits)


def test_alpha_is_composited_over_white_with_exact_rounding():
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([c, c, c, a], axis=-1).astype(np.uint8)  # every (colour, alpha) pair: 256×256
    out = load_rgb(rgba)
    expected = np.array([[over_white_reference(ci, ai) for ai in range(256)] for ci in range(256)], np.uint8)
    assert np.array_equal(out[..., 0], expected)
    assert (out[a == 0] == 255).all()  # fully transparent → white
    assert np.array_equal(out[a == 255][:, 0], c[a == 255])  # opaque → unchanged
    # the same pixels as a file give the same result
    assert np.array_equal(load_rgb(encode(rgba, "PNG")), out)
    assert np.array_equal(load_rgb(encode(rgba, "WEBP", lossless=True, exact=True)), out)


def test_grey_alpha_and_palette_transparency_follow_the_rgba_rule():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (36, 40), dtype=np.uint8)
    alpha = rng.integers(0, 256, (36, 40), dtype=np.uint8)
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    as_rgba = np.stack([grey, grey, grey, alpha], axis=-1)
    assert np.array_equal(load_rgb(encode(la, "PNG")), load_rgb(as_rgba))

    palette_img = Image.fromarray(rng.integers(0, 4, (36, 40), dtype=np.uint8), "P")
    palette_img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    data = encode(palette_img, "PNG", transparency=bytes([255, 0, 128, 255]))  # per-entry alpha (tRNS)
    out = load_rgb(data)
    idx = np.asarray(palette_img)
    assert (out[idx == 1] == 255).all()  # alpha 0 → white
    assert (out[idx == 0] == [255, 0, 0]).all()
    assert (out[idx == 2] == [over_white_reference(0, 128)] * 2 + [255]).all()
    assert np.array_equal(out, load_rgb(np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))))

    gif = encode(palette_img, "GIF", transparency=3)  # a GIF transparency index
    out = load_rgb(gif)
    assert (out[idx == 3] == 255).all() and (out[idx == 0] == [255, 0, 0]).all()


def test_colour_key_transparency_of_rgb_and_grey_pngs():
    array = pattern()
    key = tuple(int(v) for v in array[5, 7])
    out = load_rgb(encode(array, "PNG", transparency=key))
    hit = (array == key).all(axis=-1)
    assert (out[hit] == 255).all() and np.array_equal(out[~hit], array[~hit])


def test_sixteen_bit_files_and_arrays_keep_the_high_byte():
    rng = np.random.default_rng(5)
    for channels in (None, 3, 4):
        shape = (36, 40) if channels is None else (36, 40, channels)
        wide = rng.integers(0, 65536, shape, dtype=np.uint16)
        wide.flat[:4] = [0x00FF, 0x0100, 0xFF00, 0xFFFF]  # 0, 1, 255, 255: a shift, not a rescale or rounding
        from_array = load_rgb(wide)
        assert np.array_equal(from_array, load_rgb((wide >> 8).astype(np.uint8)))
        assert np.array_equal(load_rgb(wide.astype(">u2")), from_array)  # byte order does not matter
        assert np.array_equal(load_rgb(png16(wide)), from_array), channels  # a 16-bit PNG: the same rule
    grey = rng.integers(0, 65536, (36, 40), dtype=np.uint16)
    assert np.array_equal(load_rgb(encode(Image.fromarray(grey), "TIFF")), load_rgb(grey))  # I;16 TIFF
    assert load_rgb(grey)[0, 0, 0] == grey[0, 0] >> 8


def test_sixteen_bit_grey_transparency_key_becomes_white():
    grey = np.full((36, 40), 0x1234, np.uint16)
    grey[:10] = 0xABCD
    out = load_rgb(png16(grey, extra=png_chunk(b"tRNS", struct.pack(">H", 0xABCD))))
    assert (out[:10] == 255).all() and (out[10:] == 0x12).all()


def test_thirty_two_bit_grey_is_clipped_to_sixteen_bits_then_shifted():
    values = np.array([-5, 0, 255, 256, 0x1234, 65535, 65536, 2**31 - 1], np.int32)
    grey = np.resize(values, (32, 40)).astype(np.int32)
    data = encode(Image.fromarray(grey, "I"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    out = load_rgb(data)
    expected = np.resize(np.array([0, 0, 0, 1, 0x12, 255, 255, 255], np.uint8), (32, 40))
    assert np.array_equal(out[..., 0], expected) and np.array_equal(out[..., 2], expected)


def test_cmyk_and_ycbcr_use_pillows_integer_conversion():
    rng = np.random.default_rng(7)
    cmyk = Image.fromarray(rng.integers(0, 256, (40, 48, 4), dtype=np.uint8), "CMYK")
    for data in (encode(cmyk, "JPEG", quality=90), encode(cmyk, "TIFF")):
        reference = Image.open(io.BytesIO(data))
        assert reference.mode == "CMYK"
        assert np.array_equal(load_rgb(data), np.asarray(reference.convert("RGB")))
    ycbcr = Image.fromarray(pattern()).convert("YCbCr")
    data = encode(ycbcr, "TIFF")
    reference = Image.open(io.BytesIO(data))
    assert reference.mode == "YCbCr"
    assert np.array_equal(load_rgb(data), np.asarray(reference.convert("RGB")))


def test_animated_images_give_their_first_frame():
    red, blue = Image.new("RGB", (40, 36), (255, 0, 0)), Image.new("RGB", (40, 36), (0, 0, 255))
    animations = {
        "GIF": encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0),
        "APNG": encode(red, "PNG", save_all=True, append_images=[blue], duration=100),
        "WEBP": encode(red, "WEBP", save_all=True, append_images=[blue], duration=100, lossless=True),
        "MPO": encode(red, "MPO", save_all=True, append_images=[blue], quality=95),
    }
    for name, data in animations.items():
        opened = Image.open(io.BytesIO(data))
        assert getattr(opened, "n_frames", 1) == 2, name
        out = load_rgb(data)
        assert out.shape == (36, 40, 3), name
        assert (np.abs(out.astype(int) - [255, 0, 0]) <= 2).all(), name  # red (MPO is lossy JPEG)
    assert Image.open(io.BytesIO(animations["MPO"])).format == "MPO"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_imageops_exif_transpose(orientation):
    array = pattern(40, 56)
    exif = exif_with_orientation(orientation)
    for data in (encode(array, "PNG", exif=exif), encode(array, "JPEG", exif=exif, quality=90),
                 encode(array, "WEBP", exif=exif, lossless=True)):
        reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        out = load_rgb(data)
        assert np.array_equal(out, np.asarray(reference))
        assert out.shape == ((56, 40, 3) if orientation >= 5 else (40, 56, 3))
    if orientation == 6:  # 6 = "rotate 90° clockwise to view": the exact pixels, lossless PNG
        assert np.array_equal(load_rgb(encode(array, "PNG", exif=exif)), np.rot90(array, k=-1))


def test_exif_orientation_of_palette_and_sixteen_bit_images():
    palette_img = Image.fromarray(pattern()).convert("P")
    data = encode(palette_img, "PNG", exif=exif_with_orientation(8))
    assert np.array_equal(load_rgb(data), np.rot90(np.asarray(palette_img.convert("RGB")), k=1))
    grey = np.random.default_rng(9).integers(0, 65536, (36, 40), dtype=np.uint16)
    data = encode(Image.fromarray(grey), "TIFF", exif=exif_with_orientation(3))
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert np.array_equal(load_rgb(data), load_rgb(np.asarray(reference)))
    assert np.array_equal(load_rgb(data), load_rgb(grey[::-1, ::-1]))


# --- refusals of arrays and other inputs ---------------------------------------------------------------------------

@pytest.mark.parametrize("array, error", [
    (np.zeros((40, 40, 3), np.float32), UnsupportedImageError),
    (np.zeros((40, 40, 3), np.float64), UnsupportedImageError),
    (np.zeros((40, 40), bool), UnsupportedImageError),
    (np.zeros((40, 40, 3), np.int16), UnsupportedImageError),
    (np.zeros((40, 40, 3), np.int32), UnsupportedImageError),
    (np.zeros((40, 40, 3), np.uint32), UnsupportedImageError),
    (np.zeros((40, 40, 3), object), UnsupportedImageError),
    (np.zeros((40, 40, 5), np.uint8), UnsupportedImageError),
    (np.zeros((40, 40, 2), np.uint8), UnsupportedImageError),
    (np.zeros((40,), np.uint8), UnsupportedImageError),
    (np.zeros((2, 40, 40, 3), np.uint8), UnsupportedImageError),
    (np.zeros((0, 0, 3), np.uint8), ImageTooSmallError),
    (np.zeros((0, 40, 3), np.uint8), ImageTooSmallError),
    (np.zeros((1, 1, 3), np.uint8), ImageTooSmallError),
    (np.zeros((31, 400), np.uint8), ImageTooSmallError),
])
def test_unusable_arrays_are_refused(array, error):
    with pytest.raises(error) as caught:
        load_rgb(array)
    assert f"array (shape {array.shape}" in str(caught.value)


@pytest.mark.parametrize("value", [None, 42, 3.5, [[1, 2], [3, 4]], {"path": "x"}, Image.new("RGB", (40, 40))])
def test_other_input_types_are_refused(value):
    with pytest.raises(UnsupportedImageError, match="is not an image"):
        load_rgb(value)


def test_limits_are_keyword_parameters():
    array = pattern(64, 64)
    assert load_rgb(array, max_pixels=4096).shape == (64, 64, 3)
    with pytest.raises(ImageTooLargeError):
        load_rgb(array, max_pixels=4095)
    assert load_rgb(array[:20, :20], min_side=16).shape == (20, 20, 3)
    with pytest.raises(ImageTooSmallError):
        load_rgb(array[:20, :20])
    with pytest.raises(ValueError):
        load_rgb(array, min_side=0)
    with pytest.raises(TypeError):
        load_rgb(array, 32)  # the limits are keyword-only


# --- hostile inputs ------------------------------------------------------------------------------------------------

def assert_plain_message(error: InputError, source: str) -> None:
    """The message names the input and the problem, and is not a repr or a traceback."""
    text = str(error)
    assert text.startswith(source + ": ") and len(text) > len(source) + 5
    for marker in ("Traceback", "Error(", " object at 0x", "\n"):
        assert marker not in text, text
    assert isinstance(error, ValueError) and error.reason.startswith(("image_", "invalid_"))


def test_empty_inputs(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    for value, source in ((path, f"file {path}"), (b"", "bytes (0 bytes)")):
        with pytest.raises(UnreadableImageError, match="empty") as caught:
            load_rgb(value)
        assert_plain_message(caught.value, source)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF"])
def test_truncated_files_are_refused(fmt):
    extra = {"JPEG": {"quality": 95}, "WEBP": {"quality": 90}}.get(fmt, {})
    data = encode(pattern(64, 80), fmt, **extra)
    for fraction in (0.05, 0.3, 0.5, 0.7, 0.9):
        cut = data[:int(len(data) * fraction)]
        with pytest.raises(UnreadableImageError) as caught:
            load_rgb(cut)
        assert_plain_message(caught.value, f"bytes ({len(cut)} bytes)")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is PILLOW_LOAD_TRUNCATED is False


def test_a_text_file_named_jpg_is_refused(tmp_path):
    path = tmp_path / "passport.jpg"
    path.write_text("this is not a photo\n" * 20)
    with pytest.raises(UnreadableImageError, match="is not a JPEG, PNG, GIF, WebP, BMP or TIFF image") as caught:
        load_rgb(path)
    assert_plain_message(caught.value, f"file {path}")


def test_other_formats_are_refused_without_decoding():
    refused = {
        "PPM": encode(pattern(), "PPM"),
        "ICO": encode(pattern(64, 64), "ICO"),
        "TGA": encode(pattern(), "TGA"),
        "EPS": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",  # Pillow would run Ghostscript
    }
    for name, data in refused.items():
        with pytest.raises(UnreadableImageError, match="is not a JPEG"):
            load_rgb(data)


@pytest.mark.parametrize("mode", ["F", "LAB"])
def test_float_and_lab_images_are_refused(mode):
    data = encode(Image.new(mode, (40, 40)), "TIFF")
    with pytest.raises(UnsupportedImageError, match="floating-point" if mode == "F" else "LAB"):
        load_rgb(data)


def test_a_one_pixel_image_is_too_small(tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(encode(np.zeros((1, 1, 3), np.uint8), "PNG"))
    with pytest.raises(ImageTooSmallError) as caught:
        load_rgb(path)
    assert caught.value.reason == "image_too_small" and "1x1" in str(caught.value)
    assert_plain_message(caught.value, f"file {path}")


def test_a_30000_square_png_bomb_is_refused_from_its_header():
    data = bomb_png(30000, full=True)
    assert len(data) < 200_000  # 112 kB on disk, 2.7 GB as RGB
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as caught:
        load_rgb(data)
    assert time.perf_counter() - start < 2
    assert caught.value.reason == "image_too_large"
    assert str(caught.value).endswith("declares 900000000 pixels, more than the 40000000-pixel limit")
    assert_plain_message(caught.value, f"bytes ({len(data)} bytes)")
    with pytest.raises(ImageTooLargeError, match="declares 900000000 pixels, more than Pillow's decompression-bomb"):
        load_rgb(data, max_pixels=10**9)  # Pillow's own guard still stands behind a raised max_pixels
    assert Image.MAX_IMAGE_PIXELS == PILLOW_MAX_IMAGE_PIXELS


def test_a_png_text_chunk_bomb_is_refused():
    # 64 MB of zeros in a 64 kB zTXt chunk: Pillow stops inflating at its per-chunk text limit and raises.
    packer = zlib.compressobj(9)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush()
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + bomb)
    png = encode(pattern(), "PNG")
    data = png[:33] + ztxt + png[33:]  # after the signature and IHDR
    with pytest.raises(UnreadableImageError):
        load_rgb(data)


def test_images_over_max_pixels_are_refused_before_decoding():
    # 64 MP: above max_pixels but under Pillow's own bomb limits, so only our header check stands in the way.
    data = bomb_png(8000)
    with pytest.raises(ImageTooLargeError, match="8000x8000 pixels, more than the 40000000-pixel limit"):
        load_rgb(data)


def test_pillows_bomb_warning_band_is_refused_even_as_an_error():
    data = bomb_png(10000)  # 100 MP: Pillow warns (DecompressionBombWarning) but does not refuse
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageTooLargeError):
        load_rgb(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a service running with -W error gets the same answer
        with pytest.raises(ImageTooLargeError):
            load_rgb(data)
    assert Image.MAX_IMAGE_PIXELS == PILLOW_MAX_IMAGE_PIXELS


def test_max_bytes_refuses_big_files_before_reading(tmp_path):
    data = encode(pattern(), "PNG")
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for value in (path, data):
        with pytest.raises(ImageTooLargeError, match="byte limit"):
            load_rgb(value, max_bytes=len(data) - 1)
        assert load_rgb(value, max_bytes=len(data)).shape == (40, 48, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow's note on the junk block, which is the point
def test_a_huge_exif_block_still_loads():
    array = pattern(40, 56)
    jpeg = encode(array, "JPEG", quality=90)
    exif = exif_with_orientation(6, junk=60_000)
    assert 60_000 < len(exif) < 65_000
    rotated = load_rgb(encode(array, "JPEG", quality=90, exif=exif))
    assert rotated.shape == (56, 40, 3)  # parsed, and the orientation applied
    junk = random.Random(1).randbytes(60_000)
    for payload in (b"Exif\x00\x00" + junk, b"Exif\x00\x00MM\x00\x2a" + junk, junk):
        out = load_rgb(jpeg_with_app1(jpeg, payload))  # unparsable EXIF: ignored like absent EXIF
        assert np.array_equal(out, load_rgb(jpeg))


def test_a_jpeg_with_thousands_of_scans_is_refused_quickly():
    data = encode(np.full((64, 64, 3), 128, np.uint8), "JPEG", progressive=True)
    tiny_scan = b"\xff\xda" + min(data.split(b"\xff\xda")[2:-1], key=len)  # an AC scan: a few dozen bytes
    many = data[:-2] + tiny_scan * 5000 + data[-2:]
    start = time.perf_counter()
    with pytest.raises(UnsupportedImageError, match="scans, more than the 500 allowed"):
        load_rgb(many)
    assert time.perf_counter() - start < 1
    assert load_rgb(data[:-2] + tiny_scan * 100 + data[-2:]).shape == (64, 64, 3)  # a few extra scans: decoded


def test_missing_directory_special_and_malformed_paths(tmp_path):
    missing = tmp_path / "no" / "such.jpg"
    with pytest.raises(UnreadableImageError, match="does not exist") as caught:
        load_rgb(missing)
    assert_plain_message(caught.value, f"file {missing}")
    assert str(missing) in str(caught.value)
    with pytest.raises(UnreadableImageError, match="is a directory") as caught:
        load_rgb(tmp_path)
    assert_plain_message(caught.value, f"file {tmp_path}")
    with pytest.raises(UnreadableImageError):
        load_rgb("")
    with pytest.raises(UnreadableImageError, match="cannot be read"):
        load_rgb(str(tmp_path / "nul\0byte.jpg"))
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    with pytest.raises(UnreadableImageError, match="does not exist"):
        load_rgb(a_file / "child.jpg")  # a path through a file
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.jpg"
        os.mkfifo(fifo)
        with pytest.raises(UnreadableImageError, match="not a regular file"):
            load_rgb(fifo)  # refused without opening it: a FIFO would block forever


def test_errors_pickle_and_keep_their_fields():
    import pickle

    error = ImageTooSmallError("bytes (10 bytes)", "is 1x1 pixels")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ImageTooSmallError and str(again) == str(error) == "bytes (10 bytes): is 1x1 pixels"
    assert (again.source, again.problem, again.reason) == ("bytes (10 bytes)", "is 1x1 pixels", "image_too_small")
    assert all(issubclass(cls, InputError) for cls in
               (UnreadableImageError, UnsupportedImageError, ImageTooLargeError, ImageTooSmallError))


def test_module_changes_no_pillow_global_and_imports_no_tensorflow():
    assert Image.MAX_IMAGE_PIXELS == PILLOW_MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    source = Path(images.__file__).read_text()
    for assignment in ("LOAD_TRUNCATED_IMAGES =", "MAX_IMAGE_PIXELS =", "simplefilter", "import cv2", "tensorflow"):
        assert assignment not in source
    probe = ("import sys, veid_ml.images; "
             "print(sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- fuzz ----------------------------------------------------------------------------------------------------------

def fuzz_bases() -> dict[str, bytes]:
    """Small valid files of every accepted format and the main variants of each."""
    rgb = pattern(36, 40, seed=11)
    rgba = np.concatenate([rgb, pattern(36, 40, seed=12)[..., :1]], axis=-1)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    frames = [Image.fromarray(rgb), Image.fromarray(rgb[::-1])]
    exif = exif_with_orientation(6)
    return {
        "png_rgb": encode(rgb, "PNG"),
        "png_rgba": encode(rgba, "PNG"),
        "png_palette_trns": encode(palette, "PNG", transparency=0),
        "png_16bit": png16(np.random.default_rng(13).integers(0, 65536, (36, 40), dtype=np.uint16)),
        "png_exif": encode(rgb, "PNG", exif=exif),
        "apng": encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50),
        "jpeg": encode(rgb, "JPEG", quality=80),
        "jpeg_progressive_exif": encode(rgb, "JPEG", quality=80, progressive=True, exif=exif),
        "jpeg_cmyk": encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "jpeg_grey": encode(rgb[..., 0], "JPEG"),
        "gif": encode(palette, "GIF", transparency=0),
        "gif_animated": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "webp_lossy": encode(rgb, "WEBP", quality=70),
        "webp_lossless_alpha": encode(rgba, "WEBP", lossless=True),
        "webp_animated": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "bmp": encode(rgb, "BMP"),
        "tiff": encode(rgb, "TIFF"),
        "tiff_lzw": encode(rgba, "TIFF", compression="tiff_lzw"),
    }


INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 30000, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def fix_png_crcs(data: bytearray) -> bytearray:
    """Recompute every PNG chunk CRC, so mutations inside chunks get past the CRC check to the parsers."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        data[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(data[pos + 4:end])))
        pos = end + 4
    return data


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    buf = bytearray(data)
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "bits", "truncate", "insert", "delete", "splice", "header", "header"))
        size = len(buf)
        if size < 2:
            break
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(size)] = rng.randrange(256)
        elif kind == "bits":
            for _ in range(rng.randint(1, 16)):
                buf[rng.randrange(size)] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del buf[rng.randrange(1, size):]
        elif kind == "insert":
            at = rng.randrange(size)
            buf[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == "delete":
            at = rng.randrange(size)
            del buf[at:at + rng.randint(1, 64)]
        elif kind == "splice":
            at, src = rng.randrange(size), rng.randrange(size)
            buf[at:at] = buf[src:src + rng.randint(1, 256)]
        else:  # an interesting integer over a header field: sizes, lengths, offsets, counts
            width, order = rng.choice(((1, "big"), (2, "big"), (2, "little"), (4, "big"), (4, "little")))
            at = rng.randrange(min(size - width, 96)) if size > width else 0
            value = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            buf[at:at + width] = value.to_bytes(width, order)
        steps.append(kind)
    if buf.startswith(b"\x89PNG") and rng.random() < 0.7:
        fix_png_crcs(buf)
        steps.append("crc")
    return bytes(buf), steps


@pytest.mark.filterwarnings("ignore")  # Pillow warns about corrupt EXIF, bomb sizes...: the outcome is what counts
def test_fuzzed_images_either_decode_or_raise_input_error():
    bases = fuzz_bases()
    for name, data in bases.items():  # the seeds themselves are valid
        check_rgb(load_rgb(data), *((40, 36) if "exif" in name else (36, 40)))
    rng = random.Random(FUZZ_SEED)
    names = sorted(bases)
    failures, outcomes, slowest = [], {}, (0.0, "")
    faulthandler.dump_traceback_later(300, exit=True)  # a hang in C code fails the run instead of stalling CI
    start = time.perf_counter()
    try:
        for case in range(FUZZ_CASES):
            name = names[case % len(names)]
            data, steps = mutate(bases[name], rng)
            strict = case % 5 == 0  # every fifth case with warnings raised as errors, as a -W error service would
            began = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error" if strict else "ignore")
                    out = load_rgb(data)
            except InputError as exc:
                outcome = type(exc).__name__
                assert str(exc).startswith(f"bytes ({len(data)} bytes): ")
            except Exception as exc:  # anything else is a bug in the input layer
                failures.append(f"case {case} ({name}, {'+'.join(steps)}): {type(exc).__name__}: {exc}")
                continue
            else:
                outcome = "decoded"
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags["C_CONTIGUOUS"]
                assert min(out.shape[:2]) >= images.DEFAULT_MIN_SIDE
                assert out.shape[0] * out.shape[1] <= images.DEFAULT_MAX_PIXELS
            took = time.perf_counter() - began
            slowest = max(slowest, (took, f"case {case} ({name}, {'+'.join(steps)})"))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    elapsed = time.perf_counter() - start
    print(f"\nfuzz: {FUZZ_CASES} cases in {elapsed:.1f} s, slowest {slowest[0]:.2f} s ({slowest[1]}); {outcomes}")
    assert not failures, "\n".join(failures[:20])
    assert outcomes.get("decoded", 0) > 50 and outcomes.get("UnreadableImageError", 0) > 50  # both paths exercised
    assert slowest[0] < 10, slowest
