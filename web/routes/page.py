"""The search page at ``/``: one HTML template; its script and style are static files."""

from flask import Blueprint, render_template

from ..service import current_service
from .api import public_model_name

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    service = current_service()
    # No data here beyond the index's size: the page is public, its API calls are not.
    return render_template("index.html", count=service.bundle.count, model=public_model_name(service.model_name))
