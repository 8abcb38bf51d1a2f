"""What the Python SDK's tests share: a client of the server the Node test (test/python-sdk.test.ts) started, from
MAGS_API_URL / MAGS_API_TOKEN, and names no other test uses."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.request
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
sys.path.insert(0, PACKAGE)

from mags import Mags  # noqa: E402


def server_url() -> str:
    url = os.environ.get("MAGS_API_URL")
    if not url or not os.environ.get("MAGS_API_TOKEN"):
        raise RuntimeError(
            "these tests run against a Mags server: set MAGS_API_URL and MAGS_API_TOKEN (npm test does, through "
            "test/python-sdk.test.ts)"
        )
    return url


def client(**kwargs: Any) -> Mags:
    server_url()
    return Mags(**kwargs)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def router_port() -> int:
    return int(os.environ["MAGS_TEST_ROUTER_PORT"])


def router_get(host: str, path: str = "/", timeout: float = 10.0) -> "tuple[int, str]":
    """A GET through the server's router, as a browser at http://<host>:<router port>/ would send it."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", router_port(), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": f"{host}:{router_port()}"})
        res = conn.getresponse()
        return res.status, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def openapi() -> Any:
    with urllib.request.urlopen(f"{server_url()}/api/v1/openapi.json", timeout=30) as res:
        return json.load(res)


def eventually(check: Callable[[], Optional[Any]], what: str, timeout: float = 60.0, every: float = 0.25) -> Any:
    """Polls ``check`` until it returns something truthy; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = check()
        except (AssertionError, OSError) as err:
            last = err
            got = None
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {last})")


def serve_in_background(m: Any, sandbox: str, port: int, directory: str = "/srv") -> None:
    """Starts python3 -m http.server in a sandbox, outside the exec's session (setsid -f, as test/router.test.ts
    starts its app: the agent signals an exec's process group when it ends, and a `nohup … &` can lose that race on
    a loaded host), and returns once it answers."""
    r = m.exec(
        sandbox,
        f"cd {directory} && (setsid -f python3 -m http.server {port} >/dev/null 2>&1 </dev/null) && "
        f"for i in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:{port}/ && exit 0; sleep 0.1; done; exit 1",
        timeout_s=60,
    )
    if r["exit_code"] != 0:
        raise AssertionError(f"the server in {sandbox} did not start: {r}")


def router_ok(host: str, path: str = "/", timeout: float = 30.0) -> "tuple[int, str]":
    """Polls a URL through the router until it answers 200; fails with the last answer."""
    seen: "list[tuple[int, str]]" = []

    def check() -> "tuple[int, str] | None":
        seen.append(router_get(host, path))
        return seen[-1] if seen[-1][0] == 200 else None

    try:
        return eventually(check, f"http://{host}{path} answering 200", timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}; last answer: {seen[-1] if seen else None}") from None


def lines(result: Any, stream: str = "stdout") -> "list[str]":
    return [entry["message"] for entry in result["logs"] if entry["stream"] == stream]
