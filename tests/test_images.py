"""Decoding: every format, every colour mode, EXIF, and every kind of bad file."""

import io

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from search.errors import ImageError, ImageTooLargeError
from search.encoding.images import heif_available, load_image
from tests.photos import make_image, save_image


@pytest.mark.parametrize("ext", [".jpg", ".JPEG", ".png", ".webp", ".gif", ".bmp", ".tif", ".TIFF"])
def test_every_format_decodes_to_rgb(tmp_path, ext):
    path = save_image(tmp_path / f"a{ext}", seed=1, size=(64, 48))
    image, info = load_image(str(path))
    assert image.mode == "RGB"
    assert image.size == (64, 48) and (info.width, info.height) == (64, 48)


@pytest.mark.skipif(not heif_available(), reason="pillow-heif is not installed")
@pytest.mark.parametrize("ext", [".heic", ".avif"])
def test_heif_and_avif(tmp_path, ext):
    import pillow_heif

    path = tmp_path / f"a{ext}"
    if ext == ".heic":  # written without registering pillow-heif's opener: decoding registers it
        pillow_heif.from_pillow(make_image(2, (64, 48))).save(path, quality=90)
    else:  # Pillow writes AVIF itself
        make_image(2, (64, 48)).save(path)
    image, _ = load_image(str(path))
    assert image.mode == "RGB" and image.size == (64, 48)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image, _ = load_image(str(path))
    r, g, b = image.getpixel((5, 5))
    assert r > 200 and b < 50


def _png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG" if img.mode != "CMYK" else "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(mode):
    if mode == "I;16":
        src = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    else:
        src = Image.new("RGB", (8, 8), (255, 255, 255)).convert(mode)
    image, _ = load_image(_png(src))
    assert image.mode == "RGB"
    assert min(image.getpixel((3, 3))) > 240  # white stays white, 16-bit scaled not clipped


def test_transparent_pixels_become_white():
    src = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image, _ = load_image(_png(src))
    assert image.getpixel((1, 1)) == (255, 255, 255)


def test_exif_orientation_applied_and_metadata_read(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 12:30:00"
    path = tmp_path / "rotated.jpg"
    make_image(3, (80, 40)).save(path, exif=exif)
    image, info = load_image(str(path))
    assert image.size == (40, 80)
    assert (info.width, info.height) == (40, 80)
    assert info.taken_at == "2021-07-04T12:30:00"
    assert info.camera == "Canon EOS 5D"


def test_draft_decodes_large_jpeg_small_but_not_below_min_size(tmp_path):
    path = save_image(tmp_path / "big.jpg", seed=4, size=(1600, 1200))
    image, info = load_image(str(path), min_size=224)
    assert (info.width, info.height) == (1600, 1200)
    assert min(image.size) >= 224 and image.size[0] < 1600


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not_an_image"),
    ],
)
def test_bad_bytes_are_typed_errors(data, reason):
    with pytest.raises(ImageError) as e:
        load_image(data)
    assert e.value.reason == reason


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image_is_corrupt(tmp_path, ext):
    path = save_image(tmp_path / f"t{ext}", seed=5, size=(256, 256))
    data = path.read_bytes()
    with pytest.raises(ImageError) as e:
        load_image(data[: len(data) // 2])
    assert e.value.reason == "corrupt"


def test_decompression_bomb_rejected_before_decoding():
    buf = io.BytesIO()
    Image.new("L", (10000, 10000)).save(buf, "PNG")  # 100 MP of zeros: a few KB
    with pytest.raises(ImageTooLargeError) as e:
        load_image(buf.getvalue(), max_pixels=50_000_000)
    assert e.value.reason == "too_many_pixels" and e.value.status == 413


def test_tiff_with_bad_tags_is_an_error():
    buf = io.BytesIO()
    info = TiffImagePlugin.ImageFileDirectory_v2()
    make_image(6, (16, 16)).save(buf, "TIFF", tiffinfo=info)
    data = bytearray(buf.getvalue())
    data[8:40] = b"\xff" * 32
    with pytest.raises(ImageError):
        load_image(bytes(data))
