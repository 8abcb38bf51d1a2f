"""Jobs through the Python SDK against a real server: every job method with its real effect in a sandbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from tests.support import client, eventually, router_ok, serve_in_background, unique

from mags import MagsConflictError, MagsError


class RunTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_run_and_wait_returns_status_exit_code_and_logs_keyed_as_the_wire(self) -> None:
        result = self.m.run_and_wait("echo Hello World; echo warn >&2")
        self.assertEqual(result["status"], "completed")
        self.assertEqual(result["exit_code"], 0)
        self.assertIsNone(result["error_message"])
        self.assertIsInstance(result["duration_ms"], int)
        self.assertRegex(result["request_id"], r"^[0-9a-f-]{36}$")
        first, second = result["logs"]
        self.assertEqual((first["seq"], first["stream"], first["message"]), (1, "stdout", "Hello World"))
        self.assertEqual((second["stream"], second["message"]), ("stderr", "warn"))
        self.assertIn("T", first["timestamp"])
        failed = self.m.run_and_wait("exit 5")
        self.assertEqual((failed["status"], failed["exit_code"]), ("failed", 5))

    def test_run_options_reach_the_sandbox(self) -> None:
        name = unique("py-opts")
        accepted = self.m.run(
            'echo "$A-$B"; (getent hosts deb.debian.org >/dev/null && echo net) || echo nonet;'
            ' python3 -c "b = bytearray(100 * 2**20); print(len(b) >> 20)"',
            name=name,
            environment={"A": "x", "B": "y"},
            memory_mb=256,
            vcpus=0.5,
            timeout_s=60,
            network="none",
        )
        self.assertEqual(accepted["status"], "accepted")
        self.assertIsInstance(accepted["message"], str)
        job = self.m.wait(accepted["request_id"], 60)
        self.assertEqual(job["status"], "completed")
        by_name = self.m.status(name)
        self.assertEqual(by_name["request_id"], accepted["request_id"], "status() takes the job name too")
        self.assertEqual(by_name["name"], name)
        self.assertIn("echo", by_name["script"])
        out = [e["message"] for e in self.m.logs(accepted["request_id"]) if e["stream"] == "stdout"]
        self.assertEqual(out, ["x-y", "nonet", "100"], "environment and network='none' reached the script")
        self.assertEqual([e["seq"] for e in self.m.logs(accepted["request_id"], after=1)], [2, 3])

    def test_memory_mb_limits_the_script(self) -> None:
        big = 'python3 -c "b = bytearray(600 * 2**20); print(len(b))"'
        self.assertEqual(self.m.run_and_wait(big, memory_mb=1024)["status"], "completed")
        limited = self.m.run_and_wait(big, memory_mb=256)
        self.assertEqual(limited["status"], "failed", "600 MB do not fit in memory_mb=256")
        self.assertNotEqual(limited["exit_code"], 0)

    def test_timeout_s_kills_the_script(self) -> None:
        result = self.m.run_and_wait("sleep 30", timeout_s=1)
        self.assertIn(result["status"], ("failed", "error"))
        self.assertIn("timeout", (result["error_message"] or "").lower().replace(" ", ""))

    def test_ephemeral_and_unknown_options(self) -> None:
        self.assertEqual(self.m.run_and_wait("echo e", ephemeral=True)["status"], "completed")
        with self.assertRaises(TypeError) as ctx:
            self.m.run("true", workspace="x")  # type: ignore[call-arg]
        self.assertIn("workspace_id", str(ctx.exception))

    def test_list_jobs_find_job_stop_and_delete_job(self) -> None:
        name = unique("py-stop")
        accepted = self.m.run("sleep 300", name=name)
        eventually(lambda: self.m.status(name)["status"] == "running", "the job running")
        listed = self.m.list_jobs()
        self.assertEqual(listed["page"], 1)
        self.assertGreaterEqual(listed["total"], 1)
        self.assertIn(accepted["request_id"], [j["request_id"] for j in listed["jobs"]])
        self.assertEqual(self.m.list_jobs(page=1, page_size=1)["page_size"], 1)
        found = self.m.find_job(name)
        self.assertIsNotNone(found)
        assert found is not None
        self.assertEqual(found["request_id"], accepted["request_id"])
        self.assertEqual(self.m.find_job(accepted["request_id"].upper())["request_id"], accepted["request_id"])  # type: ignore[index]
        self.assertIsNone(self.m.find_job(unique("nobody")))
        with self.assertRaises(MagsConflictError):
            self.m.delete_job(accepted["request_id"])
        stopped = self.m.stop(name)
        self.assertEqual((stopped["success"], stopped["status"]), (True, "stopped"))
        self.assertEqual(stopped["request_id"], accepted["request_id"])
        self.m.delete_job(accepted["request_id"])
        self.assertIsNone(self.m.find_job(accepted["request_id"]))

    def test_pool_and_server_status(self) -> None:
        pool = self.m.pool_status()
        self.assertGreaterEqual(pool["total_vms"], pool["idle_vms"])
        self.assertTrue(any(a["status"] == "online" for a in self.m.server_status()["agents"]))
        self.assertTrue(self.m.health())


class SandboxTest(unittest.TestCase):
    """new, exec, exec_stream, update_job, url, enable_access and sync on long-lived sandboxes."""

    def setUp(self) -> None:
        self.m = client()

    def test_new_exec_and_stop(self) -> None:
        ws = unique("py-new")
        job = self.m.new(ws, memory_mb=512)
        self.addCleanup(self._stop, ws)
        self.assertEqual(job["status"], "running")
        self.assertEqual(job["workspace_id"], ws)
        r = self.m.exec(ws, "echo out; echo err >&2; echo kept > /root/f; exit 4")
        self.assertEqual((r["exit_code"], r["stdout"], r["stderr"], r["reason"]), (4, "out\n", "err\n", "exited"))
        self.assertEqual(r["output"], "out\n", "output is the reference's name for stdout")
        self.assertFalse(r["truncated"])
        self.assertEqual(self.m.exec(ws, "cat f", cwd="/root")["stdout"], "kept\n", "the sandbox kept its state")
        self.assertEqual(self.m.exec(ws, 'echo "$V"', env={"V": "v1"})["stdout"], "v1\n")
        self.assertEqual(self.m.exec(ws, "sleep 20", timeout_s=1)["reason"], "timeout")

    def test_exec_stream_delivers_bytes_as_written(self) -> None:
        ws = unique("py-xs")
        self.m.new(ws)
        self.addCleanup(self._stop, ws)
        run = self.m.exec_stream(ws, "printf 'a\\0b'; echo e >&2; sleep 1.5; echo late; exit 2")
        got = []
        times = []
        start = time.monotonic()
        for chunk in run:
            got.append(chunk)
            times.append(time.monotonic() - start)
        out = b"".join(c["data"] for c in got if c["stream"] == "stdout")
        err = b"".join(c["data"] for c in got if c["stream"] == "stderr")
        self.assertEqual((out, err), (b"a\0b" + b"late\n", b"e\n"))
        self.assertEqual((run.exit_code, run.reason, run.ended), (2, "exited", True))
        self.assertGreater(times[-1] - times[0], 1.0, "the first bytes came before the command ended")

    def test_update_job_url_and_enable_access(self) -> None:
        ws = unique("py-web")
        self.m.new(ws, persistent=True)
        self.addCleanup(self._stop, ws)
        updated = self.m.update_job(ws, startup_command="python3 -m http.server 8000", no_sleep=True)
        self.assertEqual(updated["workspace_id"], ws)
        cleared = self.m.update_job(ws, startup_command=None, no_sleep=False)
        self.assertEqual(cleared["status"], "running")
        self.m.exec(ws, "mkdir -p /srv && echo hello-from-py > /srv/index.html")
        # A server that outlives the exec: started in the background, detached from its output.
        serve_in_background(self.m, ws, 8000)
        info = self.m.url(ws, port=8000)
        self.assertTrue(info["success"])
        self.assertEqual(info["port"], 8000)
        self.assertIn(info["subdomain"], info["url"])
        host = info["url"].split("://", 1)[1].split(":", 1)[0]
        _, body = router_ok(host)
        self.assertEqual(body.strip(), "hello-from-py", "the URL reached the sandbox's port")

        ssh = self.m.enable_access(ws, 22)
        self.assertTrue(ssh["success"])
        self.assertIn("OPENSSH PRIVATE KEY", ssh["ssh_private_key"])  # type: ignore[typeddict-item]
        if shutil.which("ssh"):
            with tempfile.TemporaryDirectory() as d:
                key = os.path.join(d, "key")
                with open(key, "w") as f:
                    f.write(ssh["ssh_private_key"])  # type: ignore[typeddict-item]
                os.chmod(key, 0o600)
                out = subprocess.run(
                    ["ssh", "-i", key, "-p", str(ssh["ssh_port"]), "-o", "StrictHostKeyChecking=no",  # type: ignore[typeddict-item]
                     "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                     f"{ssh['ssh_user']}@127.0.0.1", "cat /srv/index.html"],  # type: ignore[typeddict-item]
                    capture_output=True, text=True, timeout=60,
                )
                self.assertEqual(out.stdout.strip(), "hello-from-py", out.stderr)
        url_access = self.m.enable_access(ws, 8000)
        self.assertEqual(url_access["url"], info["url"])  # type: ignore[typeddict-item]

    def test_update_job_checks_what_it_changes(self) -> None:
        ws = unique("py-upd")
        self.m.new(ws)
        self.addCleanup(self._stop, ws)
        with self.assertRaises(MagsError) as ctx:
            self.m.update_job(ws, no_sleep=True)
        self.assertEqual(ctx.exception.status, 400, "an always-on sandbox needs a persistent workspace")
        self.assertIn("persistent", str(ctx.exception))
        with self.assertRaises(TypeError):
            self.m.update_job(ws, sleep=False)

    def test_new_refuses_a_workspace_in_use(self) -> None:
        ws = unique("py-busy")
        self.m.new(ws)
        self.addCleanup(self._stop, ws)
        with self.assertRaises(MagsConflictError) as ctx:
            self.m.new(ws)
        self.assertEqual(ctx.exception.status, 409)
        self.assertIn(ws, str(ctx.exception))

    def _stop(self, name: str) -> None:
        try:
            self.m.stop(name)
        except MagsError:
            pass


if __name__ == "__main__":
    unittest.main()
