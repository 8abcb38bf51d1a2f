"""Live output: a Server-Sent Events parser, the log follower behind ``stream`` and ``run_stream`` (every line once, in
order, until the job ends, resuming a dropped connection after the last line seen), and the exec stream behind
``exec_stream`` (newline-delimited JSON frames carrying the command's bytes exactly)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from .errors import MagsConnectionError, MagsError, MagsTimeoutError
from .transport import path_segment

if TYPE_CHECKING:
    from .transport import Transport
    from .types import ExecChunk, JobStatus, LogEntry

#: Consecutive failed (re)connections before a follower gives up.
MAX_RETRIES = 5
#: The server sends a keep-alive every 15 s; this much silence means the connection is dead.
IDLE_S = 45.0
#: Longest line the exec stream may send (a frame of 256 KiB of base64 and its JSON).
MAX_FRAME = 4 * 1024 * 1024


class SseEvent:
    __slots__ = ("event", "data", "id")

    def __init__(self, event: str, data: str, id: Optional[str]) -> None:
        self.event = event
        self.data = data
        self.id = id


class SseParser:
    """The text/event-stream format of the HTML standard, fed one line at a time (without its line ending)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None
        self._saw_data = False

    def line(self, line: str) -> Optional[SseEvent]:
        """Feeds one line; returns the event it completed, if any."""
        if line == "":
            ev = SseEvent(self._event or "message", "\n".join(self._data), self._id) if self._saw_data else None
            self._event, self._data, self._id, self._saw_data = "", [], None, False
            return ev
        if line.startswith(":"):  # a comment, e.g. the keep-alive
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
            self._saw_data = True
        elif field == "id" and "\0" not in value:
            self._id = value
        return None

    def feed(self, text: str) -> List[SseEvent]:
        """Feeds whole lines of text (ending in \\n, \\r\\n or \\r); returns the events they completed."""
        out = []
        for ln in text.splitlines():
            ev = self.line(ln)
            if ev is not None:
                out.append(ev)
        return out


def _retryable(err: BaseException) -> bool:
    # 429 too: on a resume, the server may still count the stream that just dropped against the follower limit.
    return isinstance(err, MagsConnectionError) or (isinstance(err, MagsError) and err.status in (429, 502, 503, 504))


class LogStream:
    """A job's output followed live: iterate it for log entries (``{"seq", "timestamp", "level", "stream",
    "message"}``), each once and in order, as the job writes them; iteration ends when the job ends, after its last
    line. Then ``status`` holds the job's final state. ``close()`` (or leaving the loop) stops following; the job
    keeps running. It can be iterated once.

    >>> follower = m.stream(request_id)
    >>> for line in follower:
    ...     print(line["message"])
    >>> follower.status["exit_code"]
    """

    def __init__(self, transport: "Transport", name_or_id: str, after: int = 0) -> None:
        self._transport = transport
        self.request_id = name_or_id
        self.last_seq = after
        #: The job's final state, once iteration has ended with the job.
        self.status: Optional["JobStatus"] = None
        self._started = False
        self._closed = False
        self._conn: Optional[http.client.HTTPConnection] = None

    def close(self) -> None:
        """Stops following (the job is not stopped)."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "LogStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator["LogEntry"]:
        if self._started:
            raise RuntimeError("a LogStream can be iterated only once; call stream() again")
        self._started = True
        return self._run()

    def _run(self) -> Iterator["LogEntry"]:
        failures = 0
        connected = False
        last_error: Optional[BaseException] = None
        try:
            while not self._closed:
                try:
                    conn, res = self._transport.open_stream(
                        "GET",
                        f"/api/v1/mags-jobs/{path_segment(self.request_id)}/logs",
                        {"follow": True, "after": self.last_seq},
                        None,
                        "text/event-stream",
                        "",
                        IDLE_S,
                        self.request_id,
                    )
                except MagsError as err:
                    # A server that never answered is reported at once; retries are for resuming a running stream.
                    failures += 1
                    if not connected or not _retryable(err) or failures > MAX_RETRIES:
                        raise
                    last_error = err
                    time.sleep(0.15 * 2**failures)
                    continue
                connected = True
                self._conn = conn
                got_any = [False]
                try:
                    ended = yield from self._read(res, got_any)
                finally:
                    conn.close()
                    self._conn = None
                if ended or self._closed:
                    return
                # The stream closed before the job ended (a proxy, a server restart): resume after the last line.
                if got_any[0]:
                    failures = 0
                failures += 1
                if failures > MAX_RETRIES:
                    raise last_error or MagsConnectionError(
                        f"the connection to the Mags server at {self._transport.base_url} kept breaking while "
                        f"following {self.request_id}",
                        self.request_id,
                    )
                time.sleep(0.15 * 2**failures)
        finally:
            self.close()

    def _read(self, res: http.client.HTTPResponse, got_any: List[bool]) -> Iterator["LogEntry"]:
        parser = SseParser()
        while True:
            try:
                raw = res.readline()
            except (OSError, http.client.HTTPException, ValueError):
                return False
            if not raw:
                return False
            ev = parser.line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if ev is None:
                continue
            if ev.event == "log":
                entry = json.loads(ev.data)
                if entry["seq"] <= self.last_seq:
                    continue
                self.last_seq = entry["seq"]
                got_any[0] = True
                yield entry
            elif ev.event == "end":
                self.status = json.loads(ev.data)
                return True
            elif ev.event == "error":
                # A server may explain a failure in-band: {error, code}.
                try:
                    body = json.loads(ev.data)
                except ValueError:
                    body = {}
                raise MagsError(
                    500,
                    body.get("code") or "internal",
                    body.get("error") or "the server failed while following the job",
                    self.request_id,
                )


class ExecStream:
    """A command's output as it is written: iterate it for chunks ``{"stream": "stdout"|"stderr", "data": bytes}``
    (each stream in order); then ``exit_code`` and ``reason`` say how it ended. Leaving the loop early closes the
    request, and the server kills the command.

    >>> run = m.exec_stream("dev", "make test")
    >>> for chunk in run:
    ...     sys.stdout.buffer.write(chunk["data"])
    >>> run.exit_code
    """

    def __init__(self, transport: "Transport", name_or_id: str, body: Dict[str, Any]) -> None:
        self._transport = transport
        self._ref = name_or_id
        self._body = body
        self._started = False
        self.exit_code: Optional[int] = None
        self.reason: Optional[str] = None
        #: Whether the command has ended (exit_code and reason are then set).
        self.ended = False

    def __iter__(self) -> Iterator["ExecChunk"]:
        if self._started:
            raise RuntimeError("an ExecStream can be iterated only once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator["ExecChunk"]:
        conn, res = self._transport.open_stream(
            "POST",
            f"/api/v1/mags-jobs/{path_segment(self._ref)}/exec",
            None,
            json.dumps(self._body).encode("utf-8"),
            "application/x-ndjson",
            "application/json",
            # The command may be silent for as long as its own timeout.
            float(self._body.get("timeout_s", 3600)) + 60.0,
            self._ref,
        )
        try:
            while True:
                try:
                    line = res.readline(MAX_FRAME + 1)
                except socket.timeout as err:
                    raise MagsTimeoutError(f"{self._ref}'s command went silent past its timeout", self._ref) from err
                except (OSError, http.client.HTTPException) as err:
                    raise self._transport.connection_error(err, self._ref) from err
                if not line:
                    raise MagsConnectionError(
                        f"the connection to the Mags server broke before {self._ref}'s command ended", self._ref
                    )
                if len(line) > MAX_FRAME:
                    raise MagsError(0, "invalid_response", "the Mags server sent an exec frame that is too long")
                if not line.strip():
                    continue
                frame = json.loads(line)
                if "stream" in frame:
                    yield {"stream": frame["stream"], "data": base64.b64decode(frame["data"])}
                    continue
                if frame.get("reason") == "error":
                    raise MagsError(500, "sandbox_failed", frame.get("error") or "the command failed to run", self._ref)
                self.exit_code = frame.get("exit_code")
                self.reason = frame.get("reason")
                self.ended = True
                return
        finally:
            conn.close()
