"""AsyncMags: the Mags methods as coroutines for asyncio programs. Each call runs the blocking client in a worker
thread (asyncio.to_thread), so it never blocks the event loop; streams are iterated with ``async for``."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Callable

from .client import Mags

_DONE = object()


async def _aiter(make: Callable[[], Any]) -> AsyncIterator[Any]:
    it = iter(await asyncio.to_thread(make))
    while True:
        item = await asyncio.to_thread(next, it, _DONE)
        if item is _DONE:
            return
        yield item


class AsyncMags:
    """``await m.run_and_wait("echo hi")``; ``async for line in m.stream(request_id)``. Takes Mags's arguments; every
    method of Mags is here as a coroutine, and ``stream``, ``run_stream`` and ``exec_stream`` as async iterators."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync = Mags(*args, **kwargs)

    def stream(self, request_id: str, after: int = 0) -> AsyncIterator[Any]:
        return _aiter(lambda: self.sync.stream(request_id, after))

    def run_stream(self, script: str, **opts: Any) -> AsyncIterator[Any]:
        return _aiter(lambda: self.sync.run_stream(script, **opts))

    def exec_stream(self, name: str, command: str, **opts: Any) -> AsyncIterator[Any]:
        return _aiter(lambda: self.sync.exec_stream(name, command, **opts))

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)
        if not callable(method):
            return method

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call
