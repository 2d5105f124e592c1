"""Fetching the image of an ``image_url`` query, within limits.

Off unless the server was started with ``--allow-image-url``: a server that
fetches any URL it is given can be made to reach hosts only it can see. When
on, only http(s) is followed (redirects too), the body is capped in bytes and
the whole fetch in time, and a failure is the client's 4xx, not our 500.
"""

import time
import urllib.error
import urllib.parse
import urllib.request

from .errors import ApiError

USER_AGENT = "photosearch/0.1 (image_url query)"
MAX_REDIRECTS = 3
CHUNK = 64 * 1024


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise ApiError(400, "image_url_rejected", "image_url redirected to a URL that is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "image_url_rejected", "image_url must be an http:// or https:// URL")
    return url


def fetch_image(url, max_bytes, timeout):
    """The bytes at ``url``: at most ``max_bytes`` (else 413), within ``timeout`` seconds in all."""
    check_url(url)
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(max_bytes)
            chunks, size = [], 0
            while chunk := response.read1(CHUNK):  # read() would wait for all CHUNK bytes
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                if time.monotonic() > deadline:
                    raise TimeoutError("the transfer took too long")
                chunks.append(chunk)
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:  # urllib refuses a redirect to a scheme it does not follow
            raise ApiError(400, "image_url_rejected", f"image_url redirected somewhere not allowed: {e.msg}") from e
        raise ApiError(400, "image_url_failed", f"fetching image_url failed: the server answered HTTP {e.code}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:  # TimeoutError is an OSError
        reason = getattr(e, "reason", None) or e
        raise ApiError(400, "image_url_failed", f"fetching image_url failed: {reason}") from e
    return b"".join(chunks)


def _too_large(max_bytes):
    return ApiError(413, "image_too_large", f"the image at image_url is larger than the limit of {max_bytes} bytes")
