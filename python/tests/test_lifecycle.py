"""update_job's real effects, on a server that freezes idle sandboxes fast (test/python-sdk.test.ts starts this
module's server with --sleep-after 2s --stop-after 6s): a startup command starts the sandbox's app again when a
stopped sandbox is woken, and no_sleep keeps a sandbox running past the idle limit while another falls asleep."""

from __future__ import annotations

import time
import unittest

from tests.support import client, eventually, router_get, serve_in_background, unique

from mags import MagsError

APP = "cd /srv && python3 -m http.server 8000"


class LifecycleTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def _stop(self, ws: str) -> None:
        try:
            self.m.stop(ws)
            self.m.delete_workspace(ws, force=True)
        except MagsError:
            pass

    def test_a_startup_command_runs_when_a_stopped_sandbox_wakes(self) -> None:
        ws = unique("py-wake")
        self.m.new(ws, persistent=True)
        self.addCleanup(self._stop, ws)
        self.m.exec(ws, "mkdir -p /srv && echo woken > /srv/index.html")
        serve_in_background(self.m, ws, 8000)
        info = self.m.url(ws, port=8000)
        host = info["url"].split("://", 1)[1].split(":", 1)[0]
        eventually(lambda: router_get(host)[0] == 200, "the app answering", 30)
        self.m.update_job(ws, startup_command=APP)
        # Idle: frozen after --sleep-after, then stopped (its processes gone) after --stop-after.
        eventually(
            lambda: (lambda j: j["status"] == "sleeping" and j["vm_id"] is None)(self.m.status(ws)),
            "the sandbox stopping while asleep",
            60,
        )
        status, body = router_get(host, timeout=90)
        self.assertEqual((status, body.strip()), (200, "woken"), "the request woke it and the startup command served it")
        self.assertEqual(self.m.status(ws)["status"], "running")

    def test_no_sleep_keeps_a_sandbox_running_past_the_idle_limit(self) -> None:
        awake, sleepy = unique("py-awake"), unique("py-sleepy")
        self.m.new(awake, persistent=True)
        self.addCleanup(self._stop, awake)
        self.m.new(sleepy, persistent=True)
        self.addCleanup(self._stop, sleepy)
        updated = self.m.update_job(awake, no_sleep=True)
        self.assertEqual(updated["status"], "running")
        eventually(lambda: self.m.status(sleepy)["status"] == "sleeping", "the other sandbox falling asleep", 60)
        # Longer than --sleep-after again: the always-on one never slept.
        time.sleep(3)
        self.assertEqual(self.m.status(awake)["status"], "running", "no_sleep=True kept it awake")


if __name__ == "__main__":
    unittest.main()
