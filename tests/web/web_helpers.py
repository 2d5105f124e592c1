"""Assertions and reference computations shared by the web tests."""

import base64
import threading
from contextlib import contextmanager

import numpy as np
from werkzeug.serving import make_server


def b64(path):
    return base64.b64encode(path.read_bytes()).decode()


def brute_force_ids(bundle, query, k):
    """Ids of the ``k`` stored vectors nearest ``query`` and their scores, computed directly."""
    scores = np.asarray(bundle.vectors, dtype=np.float64) @ np.asarray(query, dtype=np.float64)
    order = np.lexsort((bundle.ids, -scores))[:k]
    return [int(i) for i in bundle.ids[order]], scores[order]


def assert_error(response, status, code=None):
    """The one error shape, with the expected status (and code), of a Flask test response."""
    assert response.status_code == status, response.get_data(as_text=True)
    return assert_error_shape(response.mimetype, response.get_json(), code)


def assert_error_shape(mimetype, body, code=None):
    """``{"error": {"code", "message"}}`` as JSON; returns the inner object."""
    assert mimetype == "application/json", mimetype
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


@contextmanager
def serving(app):
    """``app`` on 127.0.0.1 on a free port, in a thread: yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
