"""Fetching the image of an ``image_url`` query, within limits.

Off unless the server was started with ``--allow-image-url``: a server that
fetches any URL it is given can be made to reach hosts only it can see. When
on:

- only http(s) is followed, redirects too (at most ``MAX_REDIRECTS``);
- each host name is resolved here, and the connection goes to an address
  that was checked: loopback, private, link-local, multicast and reserved
  addresses are refused (unless ``allow_private``), at the first hop and at
  every redirect, so neither a DNS answer nor a redirect can point inside;
- one deadline covers the whole fetch, redirects included: a watchdog shuts
  the socket when it passes, so a server that trickles its headers cannot
  stretch it (a socket timeout only bounds each read);
- the body is capped in bytes (413), and every other failure is the same
  400 with the same message, so the answers do not map the network.
"""

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse

from .errors import ApiError

USER_AGENT = "photosearch/0.1 (image_url query)"
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
FAILED = "the image at image_url could not be fetched"  # the one message for every failure of a fetch

# getaddrinfo cannot be interrupted: it runs here, and a request waits for it only until its deadline.
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="image-url-dns")


class FetchFailed(Exception):
    """Why a fetch failed, for the log and tests; the client sees only :data:`FAILED`."""


def check_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "image_url_rejected", "image_url must be an http:// or https:// URL")
    return parts


def fetch_image(url, max_bytes, timeout, allow_private=False):
    """The bytes at ``url``: at most ``max_bytes`` (else 413), within ``timeout`` seconds in all."""
    parts = check_url(url)
    deadline = time.monotonic() + timeout
    try:
        for _ in range(MAX_REDIRECTS + 1):
            location = _get(parts, deadline, max_bytes, allow_private)
            if isinstance(location, bytes):
                return location
            parts = urllib.parse.urlsplit(urllib.parse.urljoin(parts.geturl(), location))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchFailed(f"redirected to {parts.scheme or 'a relative'} URL")
        raise FetchFailed("too many redirects")
    except (FetchFailed, OSError, http.client.HTTPException, ValueError) as e:  # TimeoutError is an OSError
        raise ApiError(400, "image_url_failed", FAILED) from e


def is_public(ip):
    """True for an address on the public internet: not loopback, private, link-local, multicast or reserved."""
    ip = ipaddress.ip_address(ip.split("%", 1)[0])  # a scope id ("fe80::1%eth0") is link-local anyway
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _get(parts, deadline, max_bytes, allow_private):
    """One request: the body (bytes) of a 200, or the ``Location`` of a redirect (str)."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _address(parts.hostname, port, deadline, allow_private)
    connection = _Connection(parts.hostname, port, address, deadline, https=parts.scheme == "https")
    response = None
    try:
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*",
                                                   "Connection": "close"})
        response = connection.getresponse()
        if response.status in REDIRECTS and response.getheader("Location"):
            return response.getheader("Location")
        if response.status != 200:
            raise FetchFailed(f"HTTP {response.status}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(max_bytes)
        chunks, size = [], 0
        while chunk := response.read1(CHUNK):  # read() would wait for all CHUNK bytes
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
        if time.monotonic() > deadline:  # the watchdog cut the body short
            raise TimeoutError("the deadline passed")
        return b"".join(chunks)
    finally:
        if response is not None:
            response.close()
        connection.finish()


def _address(host, port, deadline, allow_private):
    """The first address of ``host`` that may be reached, as a ``(family, sockaddr)``."""
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except concurrent.futures.TimeoutError:
        raise TimeoutError("name resolution took too long") from None
    for family, _, _, _, sockaddr in infos:
        if allow_private or is_public(sockaddr[0]):
            return family, sockaddr
    raise FetchFailed(f"{host} resolves to no public address")


class _Connection(http.client.HTTPConnection):
    """A connection to an address already checked (no second DNS lookup), shut at the deadline.

    http.client hands the socket over to the response and forgets it (``close()``
    after the headers of a ``Connection: close`` answer), so the watchdog keeps
    its own reference and lives until :meth:`finish`.
    """

    def __init__(self, host, port, address, deadline, https):
        super().__init__(host, port)
        self._address, self._deadline, self._https = address, deadline, https
        self._watchdog = self._live = None

    def connect(self):
        family, sockaddr = self._address
        self.sock = self._live = socket.socket(family, socket.SOCK_STREAM)
        left = self._deadline - time.monotonic()
        self._watchdog = threading.Timer(max(0.0, left), self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.sock.settimeout(max(0.001, left))
        self.sock.connect(sockaddr)
        if self._https:  # the wrapped socket takes over the descriptor: the watchdog shuts that one
            self.sock = self._live = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)

    def _expire(self):
        try:
            self._live.shutdown(socket.SHUT_RDWR)  # wakes a read in progress; the request then fails
        except OSError:
            pass  # already closed

    def finish(self):
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._live is not None:
            self._live.close()
        self.close()


def _too_large(max_bytes):
    return ApiError(413, "image_too_large", f"the image at image_url is larger than the limit of {max_bytes} bytes")
