"""The application factory: settings -> one Searcher per process -> blueprints.

``create_app()`` with no argument reads ``PHOTOSEARCH_*`` environment
variables, which is how gunicorn runs it: ``gunicorn 'web:create_app()'``.
"""

import logging

from flask import Flask, Request

from search.runtime import configure_process

from . import errors, metrics, security, threads
from .config import ServeConfig
from .routes import BLUEPRINTS
from .service import Service, load_searcher


def create_app(config=None, searcher=None):
    """A Flask app serving ``config.index``.

    ``config``: a :class:`ServeConfig`, a dict of settings, or None for the
    environment. ``searcher``: an already loaded Searcher to share (tests);
    by default the bundle's model is loaded and warmed up here, once.
    """
    if config is None:
        config = ServeConfig.from_env()
    elif isinstance(config, dict):
        config = ServeConfig(**config)
    configure_process(config.max_pixels)
    threads.limit_process()
    _configure_logging()
    app = Flask(__name__)
    app.request_class = UploadClosingRequest
    # DEBUG stays off whatever FLASK_DEBUG says: it would let exceptions escape the error handlers.
    app.config.update(MAX_CONTENT_LENGTH=config.max_upload_bytes, DEBUG=False)
    app.url_map.merge_slashes = False  # "//x" is a JSON 404, not an HTML redirect
    app.json.sort_keys = False  # keep the documented field order
    app.json.ensure_ascii = False
    if searcher is None:
        searcher = load_searcher(config)
    service = Service(config, searcher, metrics.Metrics())
    app.extensions["photosearch"] = service
    app.before_request(service.refresh)
    app.before_request(threads.limit_this_thread)

    errors.init_app(app)
    security.init_app(app, token=config.token, cors_origin=config.cors_origin)
    metrics.init_app(app, service.metrics)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


class UploadClosingRequest(Request):
    """Closes every upload file it opened, also those of a multipart body that failed to parse
    (Werkzeug drops them unclosed, and a hostile client can send such bodies at will)."""

    def _get_file_stream(self, *args, **kwargs):
        stream = super()._get_file_stream(*args, **kwargs)
        self.__dict__.setdefault("_upload_streams", []).append(stream)
        return stream

    def close(self):
        try:
            super().close()
        finally:
            for stream in self.__dict__.pop("_upload_streams", ()):
                stream.close()


def _configure_logging():
    # Under gunicorn or `python -m web`, our INFO lines (model loaded, ready) should show, without
    # turning on every library's INFO logging; a host that configured logging itself is left alone.
    # The handler goes on the root logger: a handler on "web" alone printed every line twice once a
    # library called logging.info() (open_clip does), which installs a root handler of its own.
    if logging.getLogger().handlers:
        return
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("web").setLevel(logging.INFO)
