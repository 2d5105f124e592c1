"""Importing the library changes nothing in the process: checked in a fresh interpreter.

The libraries ``search`` builds on are imported first (their own import-time
effects are theirs); then every module of ``search``, and nothing of the
process may have changed: environment, Pillow's limit and formats, logging,
warnings filters, faiss's and torch's threads.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import json, logging, os, pkgutil, importlib, sys, warnings

import numpy, faiss, torch, torchvision, torchvision.io, torchvision.transforms, open_clip, open_clip.model
import huggingface_hub, huggingface_hub.constants
from PIL import Image

def state():
    return {
        "environ": dict(os.environ),
        "max_image_pixels": Image.MAX_IMAGE_PIXELS,
        "pillow_openers": sorted(Image.OPEN), "pillow_ids": list(Image.ID),
        "pillow_extensions": sorted(Image.EXTENSION.items()),
        "root_handlers": [repr(h) for h in logging.root.handlers], "root_level": logging.root.level,
        "logging_disable": logging.root.manager.disable,
        "loggers": sorted((name, getattr(logger, "level", None))
                          for name, logger in logging.root.manager.loggerDict.items()
                          if not name.startswith("search")),
        "warnings_filters": [repr(f) for f in warnings.filters],
        "blas_threshold": faiss.cvar.distance_compute_blas_threshold,
        "faiss_threads": faiss.omp_get_max_threads(),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "hf_hub_offline": huggingface_hub.constants.HF_HUB_OFFLINE,
    }

before = state()
import search
names = sorted(m.name for m in pkgutil.walk_packages(search.__path__, "search."))
for name in names:
    importlib.import_module(name)
for name in search.__all__:
    getattr(search, name)
after = state()
print(json.dumps({"modules": names, "before": before, "after": after,
                  "heif_imported": "pillow_heif" in sys.modules}))
"""


@pytest.fixture(scope="module")
def probe():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # as a program that never set it
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_every_module_is_imported(probe):
    assert {"search.query.searcher", "search.store.bundle", "search.encoding.encoder", "search.runtime",
            "search.index.gpu_exact", "search.encoding.device_images"} <= set(probe["modules"])


@pytest.mark.parametrize("what", ["environ", "max_image_pixels", "pillow_openers", "pillow_ids", "pillow_extensions",
                                  "root_handlers", "root_level", "logging_disable", "loggers", "warnings_filters",
                                  "blas_threshold", "faiss_threads", "torch_threads", "torch_interop_threads",
                                  "hf_hub_offline"])
def test_importing_search_changes_nothing(probe, what):
    assert probe["after"][what] == probe["before"][what]


def test_heif_support_is_not_loaded_at_import(probe):
    assert not probe["heif_imported"]  # its opener is registered at the first decode
