"""The one place the SDK talks HTTP (http.client, standard library only): base URL, token, timeouts, retries of
idempotent calls, streamed uploads, and the mapping of every failure to a typed error."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

from .errors import MagsConnectionError, MagsError, MagsTimeoutError, error_from_response

VERSION = "0.1.0"

#: Methods a retry cannot repeat the effect of (RFC 9110 idempotent methods).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Attempts of an idempotent call that met a connection error or a 503 (the first and three retries).
ATTEMPTS = 4
#: First backoff in seconds; doubled at each retry, with jitter.
BACKOFF_S = 0.25
#: Bytes read from disk and sent per write when uploading.
UPLOAD_CHUNK = 256 * 1024

Query = Optional[Mapping[str, Union[str, int, float, bool, None]]]
ProgressCallback = Callable[[int, int], None]


class _ConnectTimeout(ConnectionError):
    """The server accepted no connection in time: nothing was sent, so an idempotent call may be retried."""


def path_segment(value: str) -> str:
    """One path segment, percent-encoded (a name or id never changes the route)."""
    return quote(value, safe="")


class Transport:
    def __init__(self, api_url: str, api_token: Optional[str], timeout: float) -> None:
        parts = urlsplit(api_url)
        self.base_url = api_url
        self.api_token = api_token
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        #: Pauses between retries; the tests shorten them.
        self.backoff_s = BACKOFF_S

    # ── plumbing ──────────────────────────────────────────────────────────────────────────────────────────────

    def connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def target(self, path: str, query: Query = None) -> str:
        q = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        return f"{self._prefix}{path}" + (f"?{urlencode(q)}" if q else "")

    def headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        h = {"User-Agent": f"mags-sdk-python/{VERSION}"}
        if self.api_token:
            h["Authorization"] = f"Bearer {self.api_token}"
        h.update(extra or {})
        return h

    def connection_error(self, err: BaseException, request_id: Optional[str] = None) -> MagsError:
        if isinstance(err, _ConnectTimeout):
            return MagsConnectionError(
                f"the Mags server at {self.base_url} accepted no connection ({err}); is it overloaded?", request_id
            )
        if isinstance(err, socket.timeout):
            return MagsTimeoutError(f"the Mags server at {self.base_url} did not answer in time", request_id)
        if isinstance(err, socket.gaierror):
            return MagsConnectionError(
                f"cannot reach the Mags server at {self.base_url}: its host name does not resolve (check MAGS_API_URL)",
                request_id,
            )
        if isinstance(err, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
            return MagsConnectionError(f"the connection to the Mags server at {self.base_url} broke; try again", request_id)
        if isinstance(err, ssl.SSLError):
            return MagsConnectionError(f"TLS with the Mags server at {self.base_url} failed: {err}", request_id)
        return MagsConnectionError(
            f"cannot reach the Mags server at {self.base_url}: is it running? (mags server)", request_id
        )

    def _pause(self, attempt: int, retry_after: Optional[str] = None) -> None:
        delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 10.0))
        time.sleep(delay)

    # ── JSON requests ─────────────────────────────────────────────────────────────────────────────────────────

    def json(
        self,
        method: str,
        path: str,
        query: Query = None,
        body: Any = None,
        hold: float = 0.0,
        request_id: Optional[str] = None,
        allow_empty: bool = False,
    ) -> Any:
        """One JSON request; the parsed body of a 2xx answer, or a MagsError. An idempotent call is retried with
        backoff on a connection error or a 503; any other call is sent once."""
        attempts = ATTEMPTS if method in IDEMPOTENT else 1
        data = None if body is None else json.dumps(body).encode("utf-8")
        extra = {"Accept": "application/json"}
        if data is not None:
            extra["Content-Type"] = "application/json"
        for attempt in range(attempts):
            conn = self.connection(self.timeout + hold)
            try:
                try:
                    # A connection not accepted in time is a connection error (nothing was sent): retried like one.
                    try:
                        conn.connect()
                    except socket.timeout as err:
                        raise _ConnectTimeout(f"no connection within {self.timeout + hold:g} s") from err
                    conn.request(method, self.target(path, query), body=data, headers=self.headers(extra))
                    res = conn.getresponse()
                    raw = res.read()
                except socket.timeout as err:
                    raise MagsTimeoutError(
                        f"the Mags server at {self.base_url} did not answer within {round(self.timeout + hold)} s",
                        request_id,
                    ) from err
                except (OSError, http.client.HTTPException) as err:
                    if attempt + 1 < attempts:
                        self._pause(attempt)
                        continue
                    raise self.connection_error(err, request_id) from err
            finally:
                conn.close()
            if res.status == 503 and attempt + 1 < attempts:
                self._pause(attempt, res.getheader("Retry-After"))
                continue
            return self._answer(res.status, res.reason, raw, path, request_id, allow_empty)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(
        self, status: int, reason: str, raw: bytes, path: str, request_id: Optional[str], allow_empty: bool
    ) -> Any:
        parsed: Any = None
        text = raw.decode("utf-8", "replace")
        if text != "":
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if status < 200 or status > 299:
            raise error_from_response(status, reason, parsed, self.base_url, request_id)
        if parsed is None and not (allow_empty and text == ""):
            raise MagsError(
                status,
                "invalid_response",
                f"the Mags server at {self.base_url} answered {path} with something that is not JSON",
                request_id,
            )
        return parsed

    # ── streams ───────────────────────────────────────────────────────────────────────────────────────────────

    def open_stream(
        self,
        method: str,
        path: str,
        query: Query,
        body: Optional[bytes],
        accept: str,
        content_type: str,
        idle_timeout: float,
        request_id: Optional[str],
    ) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Opens a streaming request: returns once a 2xx answer's headers arrived, leaving its body to the caller
        (each read then waits at most ``idle_timeout``). A non-2xx answer becomes a MagsError."""
        conn = self.connection(self.timeout)
        try:
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type
            conn.request(method, self.target(path, query), body=body, headers=self.headers(headers))
            res = conn.getresponse()
        except socket.timeout as err:
            conn.close()
            raise MagsTimeoutError(
                f"the Mags server at {self.base_url} did not answer within {round(self.timeout)} s", request_id
            ) from err
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise self.connection_error(err, request_id) from err
        if 200 <= res.status <= 299:
            if conn.sock is not None:
                conn.sock.settimeout(idle_timeout)
            return conn, res
        try:
            raw = res.read()
        except (OSError, http.client.HTTPException):
            raw = b""
        finally:
            conn.close()
        parsed: Any = None
        try:
            parsed = json.loads(raw.decode("utf-8", "replace")) if raw else None
        except ValueError:
            parsed = None
        raise error_from_response(res.status, res.reason, parsed, self.base_url, request_id)

    # ── uploads ───────────────────────────────────────────────────────────────────────────────────────────────

    def upload(self, path: str, query: Query, file: str, on_progress: Optional[ProgressCallback]) -> Any:
        """Streams a local file from disk as the raw body of a POST (application/octet-stream, Content-Length set),
        ``UPLOAD_CHUNK`` bytes at a time, so a large file never sits in memory. The timeout is for silence (no byte
        sent or received for ``timeout`` seconds), so a large file on a slow link is not cut off. Not retried."""
        try:
            f = open(file, "rb")
        except OSError as err:
            raise MagsError(0, "invalid_request", f"cannot upload {file}: {_why(err)}") from err
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            conn = self.connection(self.timeout)
            try:
                try:
                    conn.putrequest("POST", self.target(path, query), skip_accept_encoding=True)
                    for k, v in self.headers(
                        {
                            "Accept": "application/json",
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(size),
                        }
                    ).items():
                        conn.putheader(k, v)
                    conn.endheaders()
                    sent = 0
                    if on_progress is not None:
                        on_progress(0, size)
                    refused = False
                    while sent < size:
                        chunk = f.read(min(UPLOAD_CHUNK, size - sent))
                        if not chunk:
                            raise MagsError(0, "invalid_request", f"{file} changed size while it was uploaded; try again")
                        try:
                            conn.send(chunk)
                        except (BrokenPipeError, ConnectionResetError):
                            # A server that refuses early (401, 413) may close while the body is still being sent:
                            # its answer, not the broken pipe, is what to report.
                            refused = True
                            break
                        sent += len(chunk)
                        if on_progress is not None:
                            on_progress(sent, size)
                    try:
                        res = conn.getresponse()
                        raw = res.read()
                    except (OSError, http.client.HTTPException) as err:
                        if refused:
                            raise self.connection_error(ConnectionResetError()) from err
                        raise
                except socket.timeout as err:
                    raise MagsTimeoutError(
                        f"the Mags server at {self.base_url} went silent for {round(self.timeout)} s during the upload"
                    ) from err
                except (OSError, http.client.HTTPException) as err:
                    raise self.connection_error(err) from err
            finally:
                conn.close()
        return self._answer(res.status, res.reason, raw, path, None, False)


def _query_value(v: Union[str, int, float, bool]) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _why(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, IsADirectoryError):
        return "it is not a regular file"
    return err.strerror or str(err)
