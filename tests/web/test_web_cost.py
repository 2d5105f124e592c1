"""Every request has a bounded cost: long texts, bomb images and large deduplicated pages are refused or
capped before the expensive part (tokenising, decoding, comparing) runs."""

import base64
import io
import json
import time
import zlib

import pytest
from PIL import Image, ImageFile

from web.schema.types import MAX_TEXT
from web_helpers import assert_error

KNN = {"modality": "image", "num_images": 5, "indice_name": "photos-index"}


@pytest.fixture
def tokenised(app, monkeypatch):
    """The texts that reached the service's text encoder."""
    seen = []
    texts = app.extensions["photosearch"].texts
    encode = texts._encode
    monkeypatch.setattr(texts, "_encode", lambda batch: seen.extend(batch) or encode(batch))
    return seen


def test_a_text_over_the_limit_is_refused_before_tokenising(client, tokenised):
    word = "qz" * (MAX_TEXT // 2) + "x"  # one made-up word: byte-pair encoding costs its length squared
    assert len(word) == MAX_TEXT + 1
    for response in (client.get("/api/search", query_string={"q": word}),
                     client.post("/api/search", json={"text": word}),
                     client.post("/api/search", json={"queries": [{"text": word, "weight": 1}]}),
                     client.post("/knn-service", data=json.dumps({**KNN, "text": word}))):
        assert_error(response, 400, "invalid_argument")
        assert "300" in response.get_json()["error"]["message"]
    assert tokenised == []
    assert client.get("/api/search", query_string={"q": word[:MAX_TEXT]}).status_code == 200
    assert tokenised == [word[:MAX_TEXT]]


def _webp_claiming(width, height):
    """A small lossless WebP whose VP8L header claims ``width`` x ``height`` (the audit's was 3.9 KB)."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(out, "WEBP", lossless=True)
    data = bytearray(out.getvalue())
    at = data.index(b"VP8L") + 8 + 1  # past the chunk header and the 0x2f signature byte
    bits = int.from_bytes(data[at:at + 4], "little")
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[at:at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def _png_1bit(width, height):
    """A real 1-bit PNG of blank rows: ``width`` x ``height`` in a few kB (the audit's was 12 KB)."""
    def chunk(kind, payload):
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * ((1 + (width + 7) // 8) * height), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


QUERY_BOMBS = {
    "webp-lossless-16383x6100": _webp_claiming(16383, 6100),
    "png-1bit-10000x10000": _png_1bit(10000, 10000),
    "png-1bit-6000x5000": _png_1bit(6000, 5000),  # 30 MP: under --max-pixels, over the query limit
}


@pytest.mark.parametrize("name", QUERY_BOMBS)
def test_query_image_bombs_are_refused_from_their_header(client, monkeypatch, name):
    data = QUERY_BOMBS[name]
    assert len(data) < 40_000
    assert Image.open(io.BytesIO(data)).size[0] >= 6000
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    b64 = base64.b64encode(data).decode()
    started = time.monotonic()
    for response in (client.post("/api/search", data={"image": (io.BytesIO(data), "q.img")}),
                     client.post("/api/search", json={"image": b64}),
                     client.post("/api/search", json={"queries": [{"image": b64, "weight": 1}]}),
                     client.post("/knn-service", data=json.dumps({**KNN, "image": b64}))):
        assert "25 MP" in assert_error(response, 413, "image_too_large")["message"]
    assert decoded == []
    assert time.monotonic() - started < 5


def test_a_large_query_image_reaches_the_model_reduced(client, app, monkeypatch, photo_paths):
    seen = []
    searcher = app.extensions["photosearch"].searcher
    encode = searcher.encoder.encode_images
    monkeypatch.setattr(searcher.encoder, "encode_images", lambda batch: seen.extend(batch) or encode(batch))
    with Image.open(photo_paths[0]) as photo:
        big = photo.convert("RGB").resize((3000, 2000))
    out = io.BytesIO()
    big.save(out, "PNG")
    assert client.post("/api/search", json={"image": base64.b64encode(out.getvalue()).decode()}).status_code == 200
    assert len(seen) == 1 and 64 <= min(seen[0].size) < 128  # the tiny model reads 32 x 32
