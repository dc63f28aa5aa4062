"""A static web server on loopback serving a directory, as nginx would serve a backup
made by a `file://` sync: GET with Range and If-None-Match (aiohttp's static files),
nothing else. Runs its own event loop in a thread; counts the requests it answers."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web


class StaticServer:
    def __init__(self, root: Path, mount: str = "/backup") -> None:
        self.root = root
        self.mount = mount
        self.requests: Counter[str] = Counter()  # "GET 200", "GET 206", "GET 304", ...
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.mount}/"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        async def count(request: web.Request, response: web.StreamResponse) -> None:
            self.requests[f"{request.method} {response.status}"] += 1

        app = web.Application()
        app.on_response_prepare.append(count)
        app.router.add_static(self.mount, self.root, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
