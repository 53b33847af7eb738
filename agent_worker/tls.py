"""One TLS context per process for our HTTP clients.

httpx builds a verified context (loading the CA bundle) for every client it creates: 20-50 ms
of CPU here, and up to a second on a loaded box, spent on the job's event loop while the user
is waiting to be greeted. Prewarm builds it once per job process; clients reuse it.
"""

from __future__ import annotations

import functools
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())
