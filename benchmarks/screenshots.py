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
import logging
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
    make_library(workdir / "photos", count, long_side=1200)
    index = workdir / "index"
    build(BuildConfig(photos=str(workdir / "photos"), index=str(index), model=MODEL, model_config=str(config_file),
                      pretrained=str(checkpoint), workers=0))
    return index


class Server:
    """The app on 127.0.0.1 in a thread."""

    def __init__(self, index, port=0):
        # A random model puts most different photos above the default near-copy threshold (0.95).
        app = create_app(ServeConfig(index=str(index), device="cpu", warmup=False, duplicate_threshold=0.999))
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.thread.join(5)


LOADED = """() => [...document.querySelectorAll('main img')].filter(i => {
    const r = i.getBoundingClientRect();
    return r.top < innerHeight && r.bottom > 0 && r.left < innerWidth && r.width > 0;
}).every(i => i.complete)"""
MAX_BYTES = 300_000


def take_screenshots(url, out):
    """The page's states as PNG files in ``out``: {file name: bytes}."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)

        def shoot(name, viewport, path, action=None, ready="#results a.result"):
            context = browser.new_context(base_url=url, viewport=viewport)
            page = context.new_page()
            page.goto(path)
            page.locator(ready).first.wait_for()
            if action:
                action(page)
            page.wait_for_function(LOADED)
            page.wait_for_timeout(400)  # transitions end
            file = out / f"{name}.png"
            page.screenshot(path=file)
            context.close()
            sizes[file.name] = shrink(file)

        shoot("browse-desktop", DESKTOP, "/")
        shoot("browse-phone", PHONE, "/")
        shoot("search-fold", DESKTOP, "/?q=a+red+circle", lambda page: page.locator("button.fold").scroll_into_view_if_needed())
        shoot("viewer", DESKTOP, "/?q=a+red+circle", lambda page: open_viewer(page, 0))
        shoot("viewer-phone", PHONE, "/", lambda page: open_viewer(page, 2, info=True))
        shoot("filters", DESKTOP, "/?camera=Canon+EOS+R6&after=2024-08-01&before=2024-10-31")
        shoot("duplicates", DESKTOP, "/?view=duplicates", ready=".dup-group")
        browser.close()
    return sizes


def open_viewer(page, index, info=False):
    page.locator("#results a.result").nth(index).click()
    page.locator(".pswp[data-opened]").wait_for()
    if info:  # a phone opens the details on request
        page.locator(".pswp__button--info-button").click()
    page.wait_for_function("() => [...document.querySelectorAll('.pswp__img')].every(i => i.complete)")


def shrink(file):
    """Keep a screenshot under MAX_BYTES: a palette of 256 colours where the full colour PNG is larger."""
    from PIL import Image

    if file.stat().st_size > MAX_BYTES:
        with Image.open(file) as image:
            image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(file, optimize=True)
    return file.stat().st_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNG files")
    parser.add_argument("--serve", action="store_true", help="serve the generated library until Ctrl-C")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
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
