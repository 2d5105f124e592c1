"""``/metrics``: the Prometheus exposition of this process (or of all workers, see ``web.metrics``)."""

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics_route():
    data = current_app.extensions["metrics"].exposition()
    return Response(data, content_type=CONTENT_TYPE_LATEST)
