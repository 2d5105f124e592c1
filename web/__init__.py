"""The search service: a Flask app over the ``search`` library.

Development: ``python -m web serve --index DIR``.
Production: ``PHOTOSEARCH_INDEX=DIR gunicorn -b 127.0.0.1:8000 'web:create_app()'``.
"""

from .app import create_app
from .config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
