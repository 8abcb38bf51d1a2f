"""Mags: the Python SDK of a self-hosted sandbox platform. Standard library only.

>>> from mags import Mags
>>> m = Mags()  # reads MAGS_API_TOKEN (and MAGS_API_URL), else ~/.mags/config.json
>>> m.run_and_wait("echo Hello World")["status"]
'completed'
"""

from __future__ import annotations

from .aio import AsyncMags
from .client import Mags
from .errors import (
    MagsAuthError,
    MagsConflictError,
    MagsConnectionError,
    MagsError,
    MagsNotFoundError,
    MagsTimeoutError,
)
from .streaming import ExecStream, LogStream
from .transport import VERSION as __version__

__all__ = [
    "Mags",
    "AsyncMags",
    "MagsError",
    "MagsAuthError",
    "MagsNotFoundError",
    "MagsConflictError",
    "MagsTimeoutError",
    "MagsConnectionError",
    "LogStream",
    "ExecStream",
    "__version__",
]
