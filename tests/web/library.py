"""A generated photo library with what the filters and the viewer look at, and its app.

Photos in nested folders; JPEGs with EXIF camera and capture time, PNG and
WebP dated by their mtime only; an exact copy and a resized re-encode of one
photo; a large TIFF and a large HEIC (larger than a preview).
"""

import os
import shutil
from datetime import datetime, timezone

from PIL import ExifTags, Image

from search.encoding.images import register_heif
from tests.photos import make_image

FOLDERS = ("2023/spring", "2023/summer", "2024", "")
CAMERAS = (("Canon", "Canon EOS R5"), ("Apple", "iPhone 13"))  # EXIF make and model
CAMERA_NAMES = ("Canon EOS R5", "Apple iPhone 13")  # as the bundle names them
COUNT = 36
LARGE = {"big/large.tif": (2400, 1600), "big/large.heic": (2100, 1500)}


def when(i):
    return datetime(2022 + i % 3, 1 + i % 12, 1 + i % 27, 10 + i % 9, 15, i % 60)


def make_library(root):
    """Write the library under ``root``; returns ``{relative path: expected camera}``."""
    cameras = {}
    for i in range(COUNT):
        ext = (".jpg", ".png", ".webp")[i % 3]
        folder = FOLDERS[i % 4]
        rel = f"{folder}/img{i:04d}{ext}" if folder else f"img{i:04d}{ext}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = make_image(i)
        if ext == ".jpg":
            make, model = CAMERAS[i % 2]
            exif = Image.Exif()
            exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = make, model
            exif[ExifTags.Base.DateTime] = when(i).strftime("%Y:%m:%d %H:%M:%S")
            img.save(path, "JPEG", quality=90, exif=exif)
            cameras[rel] = model if model.startswith(make) else f"{make} {model}"
        else:
            img.save(path)
            stamp = when(i).replace(tzinfo=timezone.utc).timestamp()
            os.utime(path, (stamp, stamp))
            cameras[rel] = None
    shutil.copy2(root / "2023/spring/img0000.jpg", root / "2024/img0000 copy.jpg")  # exact copy
    make_image(0).resize((90, 68)).save(root / "2024/img0000-small.jpg", "JPEG", quality=80)  # near copy
    register_heif()  # to write the HEIC
    for rel, size in LARGE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        make_image(len(rel), size).save(root / rel)
    return cameras
