"""JPEGs decoded and preprocessed on the encoder's device (run here on the CPU device)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from benchmarks.datasets import natural_photo
from search.encoding import device_images
from search.encoding.device_images import DevicePreprocess, orient
from search.errors import InvalidArgumentError
from search.encoding.images import load_image, read_header
from tests.photos import make_image


def jpeg_bytes(image, **kwargs):
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    image = make_image(orientation, (40, 24))  # not square, not symmetric
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    assert np.array_equal(orient(tensor, orientation).permute(1, 2, 0).numpy(), expected)


def test_header_reports_format_mode_orientation_without_decoding():
    exif = Image.Exif()
    exif[0x0112] = 6
    header = read_header(jpeg_bytes(make_image(1, (80, 40)), exif=exif))
    assert (header.format, header.mode, header.orientation) == ("JPEG", "RGB", 6)
    assert (header.info.width, header.info.height) == (40, 80)
    assert read_header(jpeg_bytes(Image.new("CMYK", (8, 8)))).mode == "CMYK"


def test_inputs_match_the_pillow_path(encoder):
    """Decoded by torchvision and resized as tensors, against Pillow at full resolution."""
    device = DevicePreprocess.from_transform(encoder.preprocess, "cpu")
    exif = Image.Exif()
    exif[0x0112] = 8
    datas = [jpeg_bytes(natural_photo(seed, (400, 300))) for seed in range(3)]
    datas.append(jpeg_bytes(natural_photo(3, (400, 300)), exif=exif))
    datas.append(jpeg_bytes(natural_photo(4, (300, 200)).convert("L")))
    headers = [read_header(d) for d in datas]
    ours = torch.stack(device.inputs(datas, [h.orientation for h in headers],
                                     [h.info.width * h.info.height for h in headers]))
    pillow = torch.stack([encoder.preprocess(load_image(d)[0]) for d in datas])
    assert ours.shape == pillow.shape and ours.dtype == torch.float32
    assert float((ours - pillow).abs().mean()) < 0.02
    vectors, reference = encoder.encode_images(ours), encoder.encode_images(pillow)
    assert np.all(np.sum(vectors * reference, axis=1) >= 0.99)


def test_a_jpeg_the_decoder_rejects_comes_back_as_none(encoder):
    device = DevicePreprocess.from_transform(encoder.preprocess, "cpu")
    good = jpeg_bytes(natural_photo(0, (200, 150)))
    out = device.decode([good, good[: len(good) // 2], good])
    assert [o is None for o in out] == [False, True, False]
    assert torch.equal(out[0], out[2])
    inputs = device.inputs([good, good[:100], good], [1, 1, 1], [200 * 150] * 3)
    assert inputs[1] is None and torch.equal(inputs[0], inputs[2])


def test_large_batches_are_decoded_and_resized_a_part_at_a_time(encoder, monkeypatch):
    """The memory budgets split a batch; the inputs stay the same."""
    device = DevicePreprocess.from_transform(encoder.preprocess, "cpu")
    datas = [jpeg_bytes(natural_photo(seed, (200, 150))) for seed in range(5)]
    args = (datas, [1] * 5, [200 * 150] * 5)
    whole = torch.stack(device.inputs(*args))
    decoded, resized = [], []
    monkeypatch.setattr(device_images, "DECODED_BYTES", 2 * 200 * 150 * 3)  # two photos at a time
    monkeypatch.setattr(device_images, "FLOAT_BYTES", 200 * 150 * 12)  # one
    monkeypatch.setattr(device, "decode", lambda jpegs, real=device.decode: decoded.append(len(jpegs)) or real(jpegs))
    monkeypatch.setattr(device, "steps", [lambda b: resized.append(len(b)) or b, *device.steps])
    assert torch.equal(torch.stack(device.inputs(*args)), whole)
    assert decoded == [2, 2, 1] and resized == [1] * 5


def test_unknown_preprocessing_steps_are_refused():
    steps = transforms.Compose([transforms.Resize(32), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    with pytest.raises(InvalidArgumentError, match="RandomHorizontalFlip.*--decode workers"):
        DevicePreprocess.from_transform(steps, "cpu")


@pytest.mark.slow
def test_device_decoding_keeps_vectors_within_cosine_099(vit_b_32):
    """2 MP photos through a seeded random ViT-B-32: the device path against Pillow's full decode."""
    encoder = vit_b_32
    device = DevicePreprocess.from_transform(encoder.preprocess, "cpu")
    datas = [jpeg_bytes(natural_photo(seed, (1600, 1200))) for seed in range(4)]
    ours = encoder.encode_images(torch.stack(device.inputs(datas, [1] * 4, [1600 * 1200] * 4)))
    full = encoder.encode_images([load_image(d)[0] for d in datas])
    assert np.all(np.sum(ours * full, axis=1) >= 0.99)
