"""The service's routes, one blueprint per area."""

from . import api, clip_compat, media, metrics, openapi, page

BLUEPRINTS = (page.bp, api.bp, media.bp, clip_compat.bp, openapi.bp, metrics.bp)
