"""The reference's Python examples, run as written (taken from python/README.md, which must hold them verbatim)
against a real server. Between examples the test adds only what the reference takes for granted (analyze.py and
worker.py in their workspaces, script.py and data.csv in the working directory, a workspace "myproject" to delete)
and checks each example's effect; nothing in the examples' own text is changed."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import unittest
from typing import Any, Dict, List

from tests.support import PACKAGE, client, eventually

from mags import MagsError, MagsNotFoundError

# The reference's examples (../shared/reference/mags-docs.txt, "Python Examples"), exactly.
REFERENCE = '''from mags import Mags
m = Mags() # reads MAGS_API_TOKEN from env

# Run a command and wait
result = m.run_and_wait("echo Hello World")
print(result["status"]) # "completed"

# Local workspace (no S3 sync, good for analysis)
m.run_and_wait("python3 analyze.py", workspace_id="analysis")

# Persistent workspace (synced to S3)
m.run("pip install flask",
workspace_id="my-project", persistent=True)

# Create a sandbox (local disk)
m.new("my-project")

# Create with S3 persistence
m.new("my-project", persistent=True)

# Execute commands on existing sandbox
result = m.exec("my-project", "ls -la /root")
print(result["output"])

# Public URL
m.new("webapp", persistent=True)
info = m.url("webapp", port=3000)
print(info["url"]) # https://xyz.apps.magpiecloud.com

# Always-on sandbox (never auto-sleeps)
m.run("python3 worker.py",
workspace_id="worker", persistent=True, no_sleep=True)

# Upload files
file_ids = m.upload_files(["script.py", "data.csv"])
m.run_and_wait("python3 /uploads/script.py", file_ids=file_ids)

# Workspaces
workspaces = m.list_workspaces()
m.delete_workspace("myproject")

# Cron
m.cron_create(name="backup", cron_expression="0 0 * * *",
script="tar czf backup.tar.gz /data", workspace_id="backups")'''

WORKSPACES = ["analysis", "my-project", "webapp", "worker", "myproject", "backups"]


def readme_examples() -> str:
    with open(os.path.join(PACKAGE, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Examples", 1)[1]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


class ExamplesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()
        self.cwd = os.getcwd()
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        os.chdir(self.dir.name)
        self.addCleanup(os.chdir, self.cwd)
        self.addCleanup(self.cleanup)

    def cleanup(self) -> None:
        for ws in WORKSPACES:
            try:
                self.m.stop(ws)
            except MagsError:
                pass
            try:
                self.m.delete_workspace(ws, force=True)
            except MagsError:
                pass
        try:
            self.m.cron_delete("backup")
        except MagsNotFoundError:
            pass

    def test_the_readme_holds_the_reference_examples_verbatim(self) -> None:
        self.assertEqual(readme_examples(), REFERENCE)

    def test_the_reference_examples_run_as_written(self) -> None:
        segments = REFERENCE.split("\n\n")
        ns: Dict[str, Any] = {}
        printed: List[str] = []
        m = self.m

        def run(index: int) -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(segments[index], f"README example {index}", "exec"), ns)
            printed.append(out.getvalue())

        def last_job(script: str) -> Any:
            return next(j for j in m.list_jobs(page_size=20)["jobs"] if j["script"] == script)

        run(0)  # from mags import Mags; m = Mags()
        self.assertTrue(ns["m"].has_token, "Mags() found the token in the environment")

        run(1)  # run_and_wait
        self.assertEqual(printed[-1], "completed\n")

        m.run_and_wait("echo 'print(\"analysed\")' > analyze.py", workspace_id="analysis")
        run(2)  # a local workspace
        job = last_job("python3 analyze.py")
        self.assertEqual((job["status"], job["workspace_id"]), ("completed", "analysis"))
        self.assertEqual([e["message"] for e in m.logs(job["request_id"])], ["analysed"])
        self.assertEqual(m.get_workspace("analysis")["mode"], "local")

        run(3)  # a persistent workspace; pip refuses (the image's Python is externally managed), the job still runs
        job = m.wait(last_job("pip install flask")["request_id"], 300)
        self.assertEqual(job["workspace_id"], "my-project")
        self.assertEqual(m.get_workspace("my-project")["mode"], "persistent")

        run(4)  # new("my-project")
        self.assertEqual(m.find_job("my-project")["status"], "running")  # type: ignore[index]
        m.stop("my-project")  # the two `new` examples are alternatives: one sandbox per workspace
        run(5)  # new("my-project", persistent=True)
        run(6)  # exec
        self.assertIn(".bashrc", printed[-1])

        run(7)  # public URL
        self.assertRegex(printed[-1], r"^https?://[0-9a-f]{12}\.[a-z0-9.-]+(:\d+)?\n$")

        m.run_and_wait(
            "printf 'import time\\nprint(\"working\", flush=True)\\ntime.sleep(3600)\\n' > worker.py",
            workspace_id="worker",
            persistent=True,
        )
        run(8)  # always-on
        worker = last_job("python3 worker.py")
        eventually(lambda: ["working"] == [e["message"] for e in m.logs(worker["request_id"])], "the worker running")
        self.assertEqual(m.status(worker["request_id"])["status"], "running")

        with open("script.py", "w") as f:
            f.write("print(open('/uploads/data.csv').read().count('\\n'))\n")
        with open("data.csv", "w") as f:
            f.write("a,1\nb,2\n")
        run(9)  # uploads
        self.assertEqual(len(ns["file_ids"]), 2)
        job = last_job("python3 /uploads/script.py")
        self.assertEqual([e["message"] for e in m.logs(job["request_id"])], ["2"])

        m.run_and_wait("true", workspace_id="myproject")
        run(10)  # workspaces
        self.assertIn("myproject", [w["name"] for w in ns["workspaces"]["workspaces"]])
        self.assertNotIn("myproject", [w["name"] for w in m.list_workspaces()["workspaces"]])

        run(11)  # cron
        cron = m.cron_get("backup")
        self.assertEqual(
            (cron["cron_expression"], cron["script"], cron["workspace_id"]),
            ("0 0 * * *", "tar czf backup.tar.gz /data", "backups"),
        )
        self.assertEqual(len(segments), 12)


if __name__ == "__main__":
    unittest.main()
