"""Error paths of the Python SDK: a bad token, an unknown job, a conflict, timeouts, an unreachable server, retries
of idempotent calls only, and where the token and address come from."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List

from tests.support import client, server_url, unique

from mags import (
    Mags,
    MagsAuthError,
    MagsConflictError,
    MagsConnectionError,
    MagsError,
    MagsNotFoundError,
    MagsTimeoutError,
)


class ServerErrorsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_a_bad_or_missing_token_is_an_auth_error(self) -> None:
        bad = Mags(api_token="mags_not-a-real-token", api_url=server_url())
        with self.assertRaises(MagsAuthError) as ctx:
            bad.run("echo hi")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (401, "unauthorized"))
        self.assertIsInstance(ctx.exception, MagsError)
        with tempfile.TemporaryDirectory() as home:
            none = Mags(env={"MAGS_API_URL": server_url(), "HOME": home})
            self.assertFalse(none.has_token)
            with self.assertRaises(MagsAuthError):
                none.list_jobs()

    def test_an_unknown_job_is_not_found(self) -> None:
        with self.assertRaises(MagsNotFoundError) as ctx:
            self.m.status("no-such-job")
        err = ctx.exception
        self.assertEqual((err.status, err.code, err.request_id), (404, "not_found", "no-such-job"))
        self.assertIn("no-such-job", str(err))
        for call in (lambda: self.m.logs("no-such-job"), lambda: self.m.stop("no-such-job"),
                     lambda: self.m.exec("no-such-job", "true"), lambda: self.m.delete_workspace(unique("nows")),
                     lambda: self.m.cron_delete(unique("nocron")), lambda: self.m.url("no-such-job", 3000)):
            with self.assertRaises(MagsNotFoundError):
                call()

    def test_a_workspace_in_use_is_a_conflict(self) -> None:
        ws = unique("py-conflict")
        self.m.new(ws)
        try:
            with self.assertRaises(MagsConflictError) as ctx:
                self.m.run("true", workspace_id=ws)
            self.assertEqual(ctx.exception.status, 409)
            self.assertEqual(ctx.exception.code, "workspace_busy")
            with self.assertRaises(MagsConflictError):
                self.m.delete_workspace(ws)
        finally:
            self.m.stop(ws)
            self.m.delete_workspace(ws, force=True)

    def test_invalid_input_is_a_400_with_a_sentence(self) -> None:
        with self.assertRaises(MagsError) as ctx:
            self.m.run("echo", memory_mb=1)
        self.assertEqual((ctx.exception.status, ctx.exception.code), (400, "invalid_request"))
        self.assertIn("memory_mb", str(ctx.exception))
        with self.assertRaises(MagsError) as ctx:
            self.m.run("echo", no_sleep=True)
        self.assertIn("persistent", str(ctx.exception))

    def test_run_and_wait_timeout_leaves_the_job_running(self) -> None:
        name = unique("py-slow")
        with self.assertRaises(MagsTimeoutError) as ctx:
            self.m.run_and_wait("sleep 60", timeout=1, name=name)
        err = ctx.exception
        self.assertEqual((err.status, err.code), (0, "timeout"))
        self.assertIsNotNone(err.request_id)
        self.assertIn("keeps running", str(err))
        self.assertIn(self.m.status(name)["status"], ("accepted", "running"))
        self.assertEqual(self.m.stop(name)["status"], "stopped")


class Stub:
    """A local HTTP server answering from a script, counting what it is asked: for the client's retry rules."""

    def __init__(self, answers: List[Any]) -> None:
        self.answers = answers
        self.requests: List[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stub.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                if answer == "hang":
                    threading.Event().wait(5)
                    return
                if answer == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, body = answer
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


JOB = {"request_id": "j1", "status": "completed"}
BUSY = (503, {"error": "the server is starting; try again", "code": "unavailable"})


class RetryTest(unittest.TestCase):
    def stub(self, answers: List[Any]) -> "tuple[Stub, Mags]":
        s = Stub(answers)
        self.addCleanup(s.close)
        m = Mags(api_url=s.url, api_token="t", timeout=1)
        m._http.backoff_s = 0.01
        return s, m

    def test_an_idempotent_call_is_retried_after_503_and_a_dropped_connection(self) -> None:
        s, m = self.stub([BUSY, "drop", (200, JOB)])
        self.assertEqual(m.status("j1")["status"], "completed")
        self.assertEqual(len(s.requests), 3)

    def test_a_submission_is_never_repeated(self) -> None:
        s, m = self.stub([BUSY, (202, {"request_id": "j", "status": "accepted", "message": ""})])
        with self.assertRaises(MagsError) as ctx:
            m.run("echo once")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (503, "unavailable"))
        self.assertEqual(s.requests, ["POST /api/v1/mags-jobs"])
        s2, m2 = self.stub(["drop"])
        with self.assertRaises(MagsConnectionError):
            m2.run("echo once")
        self.assertEqual(len(s2.requests), 1)

    def test_retries_give_up_with_the_servers_sentence(self) -> None:
        s, m = self.stub([BUSY])
        with self.assertRaises(MagsError) as ctx:
            m.list_jobs()
        self.assertEqual(str(ctx.exception), "the server is starting; try again")
        self.assertEqual(len(s.requests), 4)

    def test_a_silent_server_is_a_timeout_and_a_closed_port_a_connection_error(self) -> None:
        _, m = self.stub(["hang"])
        with self.assertRaises(MagsTimeoutError) as ctx:
            m.run("echo")
        self.assertEqual(ctx.exception.status, 0)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        down = Mags(api_url=f"http://127.0.0.1:{port}", api_token="t")
        down._http.backoff_s = 0.01
        with self.assertRaises(MagsConnectionError) as cctx:
            down.status("x")
        self.assertEqual((cctx.exception.status, cctx.exception.code), (0, "network_error"))
        self.assertIn("is it running", str(cctx.exception))
        self.assertFalse(down.health())

    def test_an_answer_that_is_not_json_is_an_error(self) -> None:
        _, m = self.stub([(200, b"<html>a proxy's page</html>")])
        with self.assertRaises(MagsError) as ctx:
            m.status("j1")
        self.assertEqual(ctx.exception.code, "invalid_response")
        _, m = self.stub([(502, b"<html>bad gateway</html>")])
        with self.assertRaises(MagsError) as ctx:
            m.status("j1")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (502, "internal"))
        self.assertIn("HTTP 502", str(ctx.exception))


class ConfigTest(unittest.TestCase):
    def test_arguments_then_environment_then_config_file(self) -> None:
        with tempfile.TemporaryDirectory() as home:
            os.makedirs(os.path.join(home, ".mags"))
            with open(os.path.join(home, ".mags", "config.json"), "w") as f:
                json.dump({"api_url": "http://file.example:1/", "api_token": "from-file"}, f)
            env = {"HOME": home}
            m = Mags(env=env)
            self.assertEqual((m.api_url, m._http.api_token), ("http://file.example:1", "from-file"))
            env.update(MAGS_API_URL="http://env.example:2/api/v1", MAGS_API_TOKEN="from-env")
            m = Mags(env=env)
            self.assertEqual((m.api_url, m._http.api_token), ("http://env.example:2", "from-env"))
            m = Mags(api_token="arg", api_url="https://arg.example", env=env)
            self.assertEqual((m.api_url, m._http.api_token), ("https://arg.example", "arg"))
            magshome = os.path.join(home, "other")
            os.makedirs(magshome)
            with open(os.path.join(magshome, "config.json"), "w") as f:
                f.write("{not json")
            with self.assertRaises(ValueError) as ctx:
                Mags(env={"MAGS_HOME": magshome})
            self.assertIn("config.json is not valid JSON", str(ctx.exception))
            m = Mags(env={"HOME": os.path.join(home, "nothing")})
            self.assertEqual((m.api_url, m._http.api_token), ("http://127.0.0.1:7373", None))
        with self.assertRaises(ValueError):
            Mags(api_url="ftp://x", api_token="t")
        with self.assertRaises(ValueError):
            Mags(api_token="t", api_url="http://x", timeout=0)


if __name__ == "__main__":
    unittest.main()
