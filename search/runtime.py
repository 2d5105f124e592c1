"""Process-wide settings that suit a long-running indexer or service, applied by entry points only.

Importing ``search`` changes nothing in the process (a notebook or another
program that imports it keeps its own settings). ``python -m indexer``,
``python -m web`` and the app factory call :func:`configure_process` first.
Why each setting: ``benchmarks/RESULTS.md``.
"""

import os

from .encoding.images import DEFAULT_MAX_PIXELS

BLAS_FROM_QUERIES = 2


def configure_process(max_pixels=DEFAULT_MAX_PIXELS):
    """Tune this process for indexing or serving; call it before torch is imported.

    - OpenMP threads sleep while they wait instead of spinning: spinning
      threads on a busy CPU (request threads, decode workers) made one text
      encoding several times slower. It only counts before torch loads.
    - Pillow's own decompression-bomb limit follows ``max_pixels``: the
      project checks the pixel count itself before decoding, and Pillow would
      otherwise refuse images between its default and a larger limit asked for.
    - faiss multiplies 2 or more queries by the vectors as one BLAS product
      (its default waits for 20), which is what searches shared by concurrent
      requests need.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max(max_pixels, Image.MAX_IMAGE_PIXELS or 0)
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_FROM_QUERIES
