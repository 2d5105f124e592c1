"""Query images: their own pixel limit checked from the header, bounded concurrency, reduced decoding."""

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from search.encoding import images
from search.encoding.images import load_image, load_query_image
from search.errors import ImageError, ImageTooLargeError


def encoded(image, fmt="PNG", **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(size, mode="RGB"):
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    rgb = np.stack([x, y, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


def test_the_query_limit_is_checked_from_the_header(monkeypatch):
    data = encoded(Image.new("1", (6000, 5000), 1))  # 30 MP in a few kB
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageTooLargeError, match="over the limit of 25 MP"):
        load_query_image(data)
    with pytest.raises(ImageError):
        load_query_image(b"")


@pytest.mark.parametrize("mode, fmt", [("RGB", "PNG"), ("RGBA", "WEBP"), ("P", "GIF"), ("1", "PNG"),
                                       ("L", "TIFF"), ("RGB", "JPEG")])
def test_a_large_query_is_decoded_small_and_looks_the_same(mode, fmt):
    image = gradient((1600, 1200), mode)
    data = encoded(image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    small, info = load_query_image(data, min_size=100)
    full, full_info = load_image(data)
    assert small.mode == "RGB" and (info.width, info.height) == (full_info.width, full_info.height) == (1600, 1200)
    assert 200 <= min(small.size) < 400 or fmt == "JPEG"  # reduced by a whole factor, both sides >= 2 x 100
    assert min(small.size) >= 100
    again = np.asarray(full.resize(small.size, Image.BOX), dtype=np.float32)
    assert np.abs(np.asarray(small, dtype=np.float32) - again).mean() < 4  # the same picture, smaller


def test_a_small_query_is_decoded_as_the_indexer_decodes_it():
    data = encoded(gradient((96, 72)))
    small, _ = load_query_image(data, min_size=32)
    assert np.array_equal(np.asarray(small), np.asarray(load_image(data, min_size=32)[0]))


def test_orientation_survives_the_reduction():
    image = gradient((1600, 800))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    small, info = load_query_image(encoded(image, "PNG", exif=exif), min_size=100)
    assert (info.width, info.height) == (800, 1600) and small.height > small.width


def test_query_decodes_are_bounded_to_the_cores(monkeypatch):
    running, peak, lock = [0], [0], threading.Lock()
    decode = images._decode_query

    def counting(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        try:
            return decode(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(images, "_decode_query", counting)
    data = encoded(gradient((64, 48)))
    threads = [threading.Thread(target=load_query_image, args=(data,)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cores = images._QUERY_DECODES._initial_value
    assert peak[0] == min(cores, 12) and running[0] == 0
