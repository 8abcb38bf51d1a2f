"""Live output through the Python SDK: 10,000 lines written over a few seconds arrive in order and while the job
runs, through stream, run_stream and AsyncMags."""

from __future__ import annotations

import asyncio
import json
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List
from urllib.parse import parse_qs, urlsplit

from tests.support import client

from mags import AsyncMags, Mags, MagsNotFoundError

# 10,000 numbered lines, a pause after each thousand: about three seconds of output.
SCRIPT = (
    "i=1; while [ $i -le 10000 ]; do echo line-$i; "
    "if [ $((i % 1000)) -eq 0 ]; then sleep 0.3; fi; i=$((i+1)); done; echo done >&2"
)


class StreamTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_run_stream_yields_10000_lines_in_order_as_they_happen(self) -> None:
        follower = self.m.run_stream(SCRIPT)
        got = []
        status_at_first_line = None
        for entry in follower:
            if not got:
                # The job is still writing when its first line arrives: the stream is live, not a replay at the end.
                status_at_first_line = self.m.status(follower.request_id)["status"]
            got.append(entry)
        stdout = [e["message"] for e in got if e["stream"] == "stdout"]
        self.assertEqual(stdout, [f"line-{i}" for i in range(1, 10001)], "every line, once, in order")
        self.assertEqual([e["seq"] for e in got], list(range(1, len(got) + 1)))
        self.assertEqual(got[-1]["stream"], "stderr")
        self.assertEqual(status_at_first_line, "running")
        assert follower.status is not None
        self.assertEqual((follower.status["status"], follower.status["exit_code"]), ("completed", 0))

    def test_stream_of_a_finished_job_replays_it_and_resumes_after_a_seq(self) -> None:
        done = self.m.run_and_wait("seq 1 5")
        self.assertEqual([e["message"] for e in self.m.stream(done["request_id"])], ["1", "2", "3", "4", "5"])
        later = self.m.stream(done["request_id"], after=3)
        self.assertEqual([e["message"] for e in later], ["4", "5"])
        assert later.status is not None
        self.assertEqual(later.status["request_id"], done["request_id"])
        with self.assertRaises(RuntimeError):
            iter(later)

    def test_leaving_the_loop_stops_following_not_the_job(self) -> None:
        follower = self.m.run_stream("for i in $(seq 1 50); do echo $i; sleep 0.1; done")
        with follower:
            for entry in follower:
                if entry["message"] == "3":
                    break
        job = self.m.wait(follower.request_id, 60)
        self.assertEqual(job["status"], "completed", "the job ran on after the follower left")
        self.assertEqual(len(self.m.logs(follower.request_id)), 50)

    def test_stream_of_an_unknown_job_is_not_found(self) -> None:
        with self.assertRaises(MagsNotFoundError):
            list(self.m.stream("00000000-0000-7000-8000-000000000000"))

    def test_async_mags_streams_and_calls(self) -> None:
        async def main() -> "tuple[list[str], str]":
            am = AsyncMags()
            accepted = await am.run("for i in 1 2 3; do echo a$i; sleep 0.2; done")
            got = [e["message"] async for e in am.stream(accepted["request_id"])]
            status = await am.status(accepted["request_id"])
            runs = [e["message"] async for e in am.run_stream("echo x; echo y")]
            return got + runs, status["status"]

        got, status = asyncio.run(main())
        self.assertEqual(got, ["a1", "a2", "a3", "x", "y"])
        self.assertEqual(status, "completed")



def _log(seq: int) -> str:
    entry = {"seq": seq, "timestamp": "2026-01-01T00:00:00.000Z", "level": "info", "stream": "stdout", "message": f"m{seq}"}
    return f"event: log\ndata: {json.dumps(entry)}\n\n"


class ResumeTest(unittest.TestCase):
    def test_a_dropped_stream_resumes_after_the_last_line_seen(self) -> None:
        """A proxy or a server restart cuts the connection mid-stream: no line is lost or repeated."""
        seen_after: List[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                after = parse_qs(urlsplit(self.path).query)["after"][0]
                seen_after.append(after)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if after == "0":
                    self.wfile.write((": keep-alive\n\n" + _log(1) + _log(2) + "event: log\ndata: {\"se").encode())
                else:
                    end = {"request_id": "j", "status": "completed", "exit_code": 0}
                    self.wfile.write((_log(2) + _log(3) + f"event: end\ndata: {json.dumps(end)}\n\n").encode())
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        m = Mags(api_url=f"http://127.0.0.1:{server.server_address[1]}", api_token="t")
        follower = m.stream("j")
        self.assertEqual([e["message"] for e in follower], ["m1", "m2", "m3"])
        self.assertEqual(seen_after, ["0", "2"])
        self.assertEqual(follower.status, {"request_id": "j", "status": "completed", "exit_code": 0})


if __name__ == "__main__":
    unittest.main()
