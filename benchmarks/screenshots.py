"""Screenshots of the page, regenerated from a generated photo library: ``docs/screenshots/*.png``.

Usage: ``python -m benchmarks.screenshots [--out docs/screenshots] [--serve]``

It writes a library (benchmarks/photo_library.py), indexes it with a small
seeded random-weight open_clip model (no weights are downloaded; search
results are therefore arbitrary, the page's states are what is shown), serves
it on 127.0.0.1 and drives Debian's Chromium with Playwright through the
states the README and issue 13 name. ``--serve`` only serves the library, to
look at the page by hand.
"""

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import open_clip
import torch
from werkzeug.serving import make_server

from indexer import BuildConfig, build
from web import ServeConfig, create_app

from .photo_library import make_library

MODEL = "random-demo"
CONFIG = {"embed_dim": 64,
          "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def library_bundle(workdir, count=90):
    """A generated library under ``workdir/photos`` indexed into ``workdir/index``: the index's path."""
    workdir = Path(workdir)
    config_file = workdir / f"{MODEL}.json"
    config_file.write_text(json.dumps(CONFIG))
    open_clip.add_model_config(str(config_file))
    torch.manual_seed(0)
    checkpoint = workdir / "random-demo.pt"
    torch.save(open_clip.create_model(MODEL).state_dict(), checkpoint)
    make_library(workdir / "photos", count)
    index = workdir / "index"
    build(BuildConfig(photos=str(workdir / "photos"), index=str(index), model=MODEL, model_config=str(config_file),
                      pretrained=str(checkpoint), workers=0))
    return index


class Server:
    """The app on 127.0.0.1 in a thread."""

    def __init__(self, index, port=0):
        app = create_app(ServeConfig(index=str(index), device="cpu", warmup=False))
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.thread.join(5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNG files")
    parser.add_argument("--serve", action="store_true", help="serve the generated library until Ctrl-C")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="photosearch-screens-") as workdir:
        server = Server(library_bundle(workdir), args.port)
        try:
            if args.serve:
                print(f"serving {server.url}", flush=True)
                while True:
                    time.sleep(3600)
            print(json.dumps(take_screenshots(server.url, Path(args.out))))
        finally:
            server.close()


if __name__ == "__main__":
    main()
