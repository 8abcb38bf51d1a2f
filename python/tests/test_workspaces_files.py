"""Workspaces and uploads through the Python SDK against a real server: a file uploaded and read in a sandbox, a
1 GB upload streamed from disk in little memory, a workspace persisted, synced, resized and deleted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import unittest

from tests.support import PACKAGE, client, lines, unique

from mags import MagsError, MagsNotFoundError


class UploadTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_uploaded_files_are_read_in_the_sandbox(self) -> None:
        script = self.write("script.py", b"import csv\nprint(sum(int(r[1]) for r in csv.reader(open('/uploads/data.csv'))))\n")
        data = self.write("data.csv", b"a,1\nb,2\nc,39\n")
        progress = []
        ids = self.m.upload_files([script, data], progress=lambda sent, total: progress.append((sent, total)))
        self.assertEqual(len(ids), 2)
        self.assertEqual(progress[-1], (13, 13), "the callback saw the last file whole")
        result = self.m.run_and_wait("python3 /uploads/script.py", file_ids=ids)
        self.assertEqual((result["status"], lines(result)), ("completed", ["42"]))
        info = self.m.upload(data, name="renamed.csv")
        self.assertEqual((info["name"], info["size"]), ("renamed.csv", 13))
        self.assertEqual(info["sha256"], hashlib.sha256(b"a,1\nb,2\nc,39\n").hexdigest())
        listed = {f["file_id"]: f for f in self.m.list_files()}
        self.assertIn(ids[0], listed)
        self.assertEqual(listed[ids[1]]["name"], "data.csv")
        single = self.m.upload_file(data)
        self.assertEqual(
            lines(self.m.run_and_wait("wc -l < /uploads/data.csv", file_ids=[single])), ["3"], "upload_file too"
        )
        for fid in ids + [info["file_id"], single]:
            self.m.delete_file(fid)
        self.assertNotIn(ids[0], {f["file_id"] for f in self.m.list_files()})

    def test_upload_errors_say_what_is_wrong(self) -> None:
        with self.assertRaises(MagsError) as ctx:
            self.m.upload_file(os.path.join(self.dir.name, "missing.txt"))
        self.assertIn("no such file", str(ctx.exception))
        with self.assertRaises(MagsError) as ctx:
            self.m.upload_file(self.dir.name)
        self.assertIn("not a regular file", str(ctx.exception))
        with self.assertRaises(TypeError):
            self.m.upload_files("script.py")  # type: ignore[arg-type]
        plain = self.write("plain.txt", b"x")
        for hostile in ("two\nlines.txt", "\u202etxt.exe", "esc\x1b[31m.txt"):
            with self.assertRaises(MagsError) as ctx:
                self.m.upload(plain, name=hostile)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (422, "invalid_name"), hostile)
        with self.assertRaises(MagsNotFoundError):
            self.m.run("true", file_ids=["f-does-not-exist"])

    def test_a_1_gb_upload_streams_from_disk(self) -> None:
        """A user uploading a file larger than their memory budget: the SDK's process stays small."""
        size = 1 << 30
        path = os.path.join(self.dir.name, "big.bin")
        with open(path, "wb") as f:
            # Not sparse throughout: a pattern at each MiB, so the bytes sent are checked, not just counted.
            for i in range(0, size, 1 << 20):
                f.seek(i)
                f.write(i.to_bytes(8, "big"))
            f.truncate(size)
        code = f"""
import json, resource, sys
sys.path.insert(0, {PACKAGE!r})
from mags import Mags
calls = []
info = Mags().upload({path!r}, progress=lambda sent, total: calls.append((sent, total)))
print(json.dumps({{"info": info, "calls": len(calls), "last": calls[-1],
                   "monotonic": all(a[0] <= b[0] for a, b in zip(calls, calls[1:])),
                   "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        self.assertEqual(out.returncode, 0, out.stderr)
        import json

        got = json.loads(out.stdout)
        self.addCleanup(self.m.delete_file, got["info"]["file_id"])
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        self.assertEqual(got["info"]["size"], size)
        self.assertEqual(got["info"]["sha256"], sha.hexdigest(), "the server received the file's bytes")
        self.assertEqual(got["last"], [size, size])
        self.assertTrue(got["monotonic"])
        self.assertGreater(got["calls"], 1000, "progress was reported as bytes went out")
        peak_mb = got["peak_kb"] / 1024
        print(f"\n  1 GiB upload: peak RSS of the uploading Python process {peak_mb:.1f} MB", file=sys.stderr)
        self.assertLess(peak_mb, 100, "a 1 GB upload must not be held in memory")


class WorkspaceTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_a_persistent_workspace_is_kept_synced_resized_and_deleted(self) -> None:
        ws = unique("py-ws")
        self.addCleanup(self._delete, ws)
        job = self.m.new(ws, persistent=True)
        self.m.exec(ws, "echo v1 > /root/data.txt")
        synced = self.m.sync(ws)
        self.assertEqual((synced["success"], synced["name"], synced["changed"]), (True, ws, True))
        self.assertIsInstance(synced["version"], int)
        again = self.m.sync(job["request_id"])
        self.assertFalse(again["changed"], "nothing changed since the last sync")
        self.assertEqual(self.m.sync_workspace(ws)["version"], synced["version"])
        self.m.stop(ws)

        listed = {w["name"]: w for w in self.m.list_workspaces()["workspaces"]}
        self.assertEqual(listed[ws]["mode"], "persistent")
        self.assertEqual(listed[ws]["workspace_id"], ws)
        self.assertGreaterEqual(listed[ws]["versions"], 1)
        resized = self.m.resize(ws, 3)
        self.assertEqual(resized["disk_gb"], 3)
        self.assertEqual(self.m.get_workspace(ws)["disk_gb"], 3)

        result = self.m.run_and_wait("cat /root/data.txt", workspace_id=ws, persistent=True)
        self.assertEqual(lines(result), ["v1"], "the file persisted into the next run")

        deleted = self.m.delete_workspace(ws)
        self.assertEqual(deleted, {"success": True, "name": ws})
        with self.assertRaises(MagsNotFoundError):
            self.m.get_workspace(ws)
        self.assertNotIn(ws, [w["name"] for w in self.m.list_workspaces()["workspaces"]])

    def test_a_resize_after_stop_reaches_the_next_run(self) -> None:
        """A stopped sandbox may hold its workspace's filesystem a moment longer through its own mount namespace; the
        agent waits for it to let go before growing the disk (it used to grow it under the live filesystem, and the
        next run saw the old size on a loaded host)."""
        ws = unique("py-rs")
        self.addCleanup(self._delete, ws)
        self.m.new(ws, persistent=True)
        self.m.exec(ws, "echo v1 > /root/data.txt")
        self.m.sync(ws)
        self.m.stop(ws)
        resized = self.m.resize(ws, 3)
        self.assertEqual(resized["disk_gb"], 3)
        out = lines(self.m.run_and_wait("df -k / | tail -1", workspace_id=ws, persistent=True))
        self.assertGreater(int(out[0].split()[1]), 2 * 1024 * 1024, f"the disk is 3 GB now (df: {out[0]!r})")

    def test_a_resize_reaches_the_next_run(self) -> None:
        """The same effect without the race: a workspace whose last run ended by itself."""
        ws = unique("py-rs2")
        self.addCleanup(self._delete, ws)
        self.m.run_and_wait("echo v1 > /root/data.txt", workspace_id=ws, persistent=True)
        resized = self.m.resize(ws, 3)
        self.assertEqual(resized["disk_gb"], 3)
        out = lines(self.m.run_and_wait("cat /root/data.txt; df -k / | tail -1", workspace_id=ws, persistent=True))
        self.assertEqual(out[0], "v1")
        self.assertGreater(int(out[1].split()[1]), 2 * 1024 * 1024, f"the disk is 3 GB now (df: {out[1]!r})")

    def test_a_local_workspace_keeps_files_between_runs(self) -> None:
        ws = unique("py-local")
        self.addCleanup(self._delete, ws)
        self.m.run_and_wait("echo local > note", workspace_id=ws)
        self.assertEqual(lines(self.m.run_and_wait("cat note", workspace_id=ws)), ["local"])
        self.assertEqual(self.m.get_workspace(ws)["mode"], "local")

    def _delete(self, ws: str) -> None:
        try:
            self.m.stop(ws)
        except MagsError:
            pass
        try:
            self.m.delete_workspace(ws, force=True)
        except MagsNotFoundError:
            pass


if __name__ == "__main__":
    unittest.main()
