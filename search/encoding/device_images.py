"""Decoding JPEGs and preprocessing them on the encoder's device.

On a GPU, decoding rather than the model limits indexing speed: a CPU core
decodes far fewer photos a second than the model embeds
(``benchmarks/RESULTS.md``, "GPU"). Here the JPEG bytes go to the device,
torchvision decodes them there (nvJPEG on CUDA) and the model's own resize,
crop and normalisation run on the decoded batch, so the CPU only reads files. The steps are taken from the model's
preprocessing transform; one this module does not know is refused, rather
than approximated. On the CPU device the same code runs with libjpeg-turbo,
which is how the tests check it against the Pillow path. (torchvision keeps
one nvJPEG decoder per process, for one GPU at a time.)
"""

import torch
import torchvision.io
from torchvision import transforms

from ..errors import InvalidArgumentError

# Device memory a batch may hold at once, whatever the photos' size (a batch of 256
# photos of 12 MP is 9 GB decoded, 37 GB as floats): decoded pixels, and float copies.
DECODED_BYTES = 2**31
FLOAT_BYTES = 2**30
_SKIP = ("MaybeConvertMode", "_convert_to_rgb")  # Pillow-only mode conversion: decoded tensors are RGB already
_TO_FLOAT = ("ToTensor", "MaybeToTensor")
_ON_TENSORS = (transforms.Resize, transforms.CenterCrop, transforms.Normalize)


class DevicePreprocess:
    """The model's preprocessing, applied to decoded ``uint8`` tensors on ``device``."""

    def __init__(self, steps, device):
        self.steps = steps  # torchvision transforms that accept float [N, 3, H, W] batches
        self.device = torch.device(device)

    @classmethod
    def from_transform(cls, transform, device):
        """Build from an open_clip preprocessing ``Compose``; raises InvalidArgumentError if a step is unknown."""
        steps = []
        for step in getattr(transform, "transforms", [transform]):
            name = getattr(step, "__name__", type(step).__name__)
            if name in _SKIP or name in _TO_FLOAT:
                continue  # conversion to float in [0, 1] happens before every step (see preprocess)
            if not isinstance(step, _ON_TENSORS):
                raise InvalidArgumentError(
                    f"this model's preprocessing step {name} cannot run on the device; use --decode workers")
            steps.append(step)
        return cls(steps, device)

    def decode(self, jpegs):
        """Decode a list of JPEG byte strings to ``uint8`` ``[3, H, W]`` tensors on the device.

        An image the device decoder rejects comes back as ``None``: the
        caller decodes it another way (nvJPEG lacks some JPEG variants that
        libjpeg accepts, such as arithmetic coding).
        """
        data = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
        mode = torchvision.io.ImageReadMode.RGB
        try:
            return list(torchvision.io.decode_jpeg(data, mode=mode, device=self.device))
        except RuntimeError:
            pass  # one bad image fails the whole batch: find it
        out = []
        for one in data:
            try:
                out.append(torchvision.io.decode_jpeg(one, mode=mode, device=self.device))
            except RuntimeError:
                out.append(None)
        return out

    def inputs(self, jpegs, orientations, pixels):
        """Model inputs ``[3, S, S]`` for JPEG byte strings, or ``None`` where the decoder rejects one.

        ``pixels``: each photo's pixel count (from its header), which bounds
        how many are decoded at a time.
        """
        out = [None] * len(jpegs)
        for group in _groups(pixels, DECODED_BYTES // 3):
            images = self.decode([jpegs[i] for i in group])
            done = [(i, image) for i, image in zip(group, images) if image is not None]
            if done:
                tensors = self.preprocess([image for _, image in done], [orientations[i] for i, _ in done])
                for (i, _), tensor in zip(done, tensors):
                    out[i] = tensor
        return out

    @torch.inference_mode()
    def preprocess(self, images, orientations):
        """Model inputs ``[N, 3, S, S]`` (float32) from decoded images and their EXIF orientations."""
        images = [orient(img, o) for img, o in zip(images, orientations)]
        out = [None] * len(images)
        by_size = {}
        for i, img in enumerate(images):  # photos of one camera share a size: one resize per size
            by_size.setdefault(tuple(img.shape), []).append(i)
        for shape, same_size in by_size.items():
            for rows in _groups([shape[1] * shape[2]] * len(same_size), FLOAT_BYTES // 12, same_size):
                batch = torch.stack([images[i] for i in rows]).float().div_(255)
                for step in self.steps:
                    batch = step(batch)
                    if isinstance(step, transforms.Resize):
                        batch = batch.clamp_(0, 1)  # bicubic overshoot, clipped as Pillow's 8-bit resize does
                for i, row in zip(rows, batch):
                    out[i] = row
        return torch.stack(out)


def _groups(pixels, budget, items=None):
    """Consecutive runs of ``items`` (default: positions) whose ``pixels`` add up to at most ``budget``
    (a photo larger than that alone)."""
    items = list(range(len(pixels))) if items is None else items
    group, total = [], 0
    for item, count in zip(items, pixels):
        if group and total + count > budget:
            yield group
            group, total = [], 0
        group.append(item)
        total += count
    if group:
        yield group


def orient(image, orientation):
    """Apply an EXIF ``orientation`` (1 to 8) to a ``[C, H, W]`` tensor, as Pillow's ``exif_transpose``."""
    if orientation in (5, 6, 7, 8):
        image = image.transpose(1, 2)  # 5 is the transpose itself; 6, 7 and 8 add a flip
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        return image.flip(2)
    if orientation == 3:
        return image.flip(1, 2)
    if orientation == 4:
        return image.flip(1)
    return image
