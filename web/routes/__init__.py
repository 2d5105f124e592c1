"""The service's routes, one blueprint per area."""

from . import api, clip_compat, duplicates, media, metrics, openapi, page

BLUEPRINTS = (page.bp, api.bp, media.bp, duplicates.bp, clip_compat.bp, openapi.bp, metrics.bp)
