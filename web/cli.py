"""Command line: ``python -m web serve PHOTOS`` (or ``--index DIR``). A thin adapter over the app factory.

Serves with Werkzeug's threaded server, which is enough for one person's
photos on their own machine; production is the same app under gunicorn
(see ``web/__init__.py`` and the README). The development server holds a
thread per connection, so an idle or half-open connection is dropped after
``IDLE_TIMEOUT`` seconds without a byte.
"""

import argparse
import sys

from werkzeug.serving import WSGIRequestHandler

from search.errors import SearchError
from search.store.locate import locate_bundle

from .config import add_arguments, config_from_args


IDLE_TIMEOUT = 30  # seconds a connection may stay silent, mid-request or between requests


class TimeoutRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with a socket timeout (``socketserver`` applies ``timeout`` to each connection)."""

    timeout = IDLE_TIMEOUT


def make_parser():
    parser = argparse.ArgumentParser(prog="python -m web", description="Serve photo search over HTTP.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve an index bundle: the search page, the JSON API and "
                                         "clip-retrieval's knn-service routes")
    serve.add_argument("photos", nargs="?", metavar="PHOTOS",
                       help="photo folder whose index (PHOTOS/.photoindex) to serve, instead of --index")
    add_arguments(serve)
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.photos is not None:
        if getattr(args, "index", None) is not None:  # flags left out are absent
            parser.error("give the photo folder or --index, not both")
        args.index = args.photos
    try:
        config = config_from_args(args)
        locate_bundle(config.index)  # says what the path is when it is no index, before the model loads
        from .app import create_app  # after the arguments are checked: loading the model takes seconds

        app = create_app(config)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.token:
        print(f"warning: serving on {config.host} without a token; anyone who can reach it can search "
              "and read your photos (set PHOTOSEARCH_TOKEN)", file=sys.stderr)
    try:
        app.run(host=config.host, port=config.port, threaded=True, debug=False, use_reloader=False,
                request_handler=TimeoutRequestHandler)
    except OSError as e:  # the port is taken, or the address is not ours
        print(f"error: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0
