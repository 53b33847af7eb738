"""One TLS context per process for our HTTP clients.

httpx builds a verified context (loading the CA bundle) for every client it creates: 20-50 ms
of CPU here, and up to a second on a loaded box, spent on the job's event loop while the user
is waiting to be greeted. Prewarm builds it once per job process; clients reuse it.
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Verified against ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (a private CA), as httpx
    does, else certifi's bundle."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)
