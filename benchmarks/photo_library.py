"""A seeded, generated photo library as a person's would look: for the page's browser tests and screenshots.

Coloured shapes on soft backgrounds in several aspect ratios, spread over
folders and months, with EXIF capture dates and cameras (a few photos without
EXIF, dated by their file's mtime), one HEIC, and planted duplicates: exact
copies (``IMG_0004 copy.jpg``) and a re-encoded smaller copy.
"""

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageFilter

CAMERAS = [("Apple", "iPhone 13"), ("Canon", "Canon EOS R6"), ("Google", "Pixel 7")]
FOLDERS = ["Camera Roll", "Trips/Lisbon", "Family", "Scans"]  # Scans: PNGs without EXIF
SHAPES = [(4, 3), (3, 4), (1, 1), (16, 9), (3, 2), (2, 3)]
PALETTE = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193),
           (255, 112, 67), (158, 157, 36), (92, 107, 192), (240, 98, 146)]
START = datetime(2024, 11, 28, 17, 30)


@dataclass
class Photo:
    path: str  # relative to the library root
    taken: datetime
    camera: str | None  # as the bundle names it (make and model)
    width: int
    height: int


def picture(seed, size):
    """A soft two-colour gradient with a few bright discs and boxes."""
    rng = np.random.default_rng(seed)
    w, h = size
    top, bottom = (np.array(PALETTE[i], np.float32) * 0.55 + 60 for i in rng.choice(len(PALETTE), 2, replace=False))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    image = Image.fromarray(np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(min(w, h) // 10, min(w, h) // 3))
        shape = draw.ellipse if rng.integers(2) else draw.rounded_rectangle
        shape((x - r, y - r, x + r, y + r), fill=PALETTE[int(rng.integers(len(PALETTE)))])
    return image.filter(ImageFilter.GaussianBlur(1))


def exif_of(taken, camera):
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = camera
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def camera_name(camera):
    make, model = camera
    return model if model.startswith(make) else f"{make} {model}"


def make_library(root, count=60, long_side=480, seed=0, heic=True):
    """Write ``count`` photos (plus planted copies) under ``root``; returns their ``Photo`` records."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        folder = FOLDERS[i % len(FOLDERS)]
        aspect = SHAPES[int(rng.integers(len(SHAPES)))]
        scale = long_side / max(aspect)
        size = (round(aspect[0] * scale), round(aspect[1] * scale))
        taken = START - timedelta(days=int(i * 150 / count), hours=int(rng.integers(0, 12)))
        image = picture(seed * 10_000 + i, size)
        path = root / folder / f"IMG_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        camera = None
        if folder == "Scans":
            path = path.with_name(f"scan_{i:04d}.png")
            image.save(path, "PNG")
            os.utime(path, (taken.timestamp(), taken.timestamp()))
        else:
            camera = CAMERAS[i % len(CAMERAS)]
            if heic and i == 5:
                import pillow_heif

                pillow_heif.register_heif_opener()
                path = path.with_suffix(".heic")
                image.save(path, "HEIF", exif=exif_of(taken, camera).tobytes(), quality=80)
            else:
                image.save(path, "JPEG", exif=exif_of(taken, camera), quality=88)
        photos.append(Photo(path.relative_to(root).as_posix(), taken, camera and camera_name(camera), *size))
    for i in (4, 9, 14):  # exact copies, as a phone export or a second import leaves them
        original = photos[i]
        copy = root / original.path.replace(".jpg", " copy.jpg").replace(".png", " copy.png")
        shutil.copyfile(root / original.path, copy)
        photos.append(Photo(copy.relative_to(root).as_posix(), original.taken, original.camera,
                            original.width, original.height))
    original = photos[8]  # a smaller re-encoded copy: a near duplicate
    with Image.open(root / original.path) as image:
        small = image.resize((image.width // 2, image.height // 2))
        near = root / original.path.replace(".jpg", "_small.jpg")
        small.save(near, "JPEG", quality=60, exif=image.getexif())
    photos.append(Photo(near.relative_to(root).as_posix(), original.taken, original.camera, *small.size))
    return photos
