"""The service's routes, one blueprint per area."""

from . import api, browse, clip_compat, duplicates, media, metrics, openapi, page, previews

BLUEPRINTS = (page.bp, api.bp, browse.bp, media.bp, previews.bp, duplicates.bp, clip_compat.bp, openapi.bp,
              metrics.bp)
