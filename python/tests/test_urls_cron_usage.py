"""URL aliases, cron and usage through the Python SDK against a real server: an alias routing a request to a
sandbox, a cron job firing on a short schedule, usage counting a job."""

from __future__ import annotations

import unittest

from tests.support import client, eventually, router_get, router_ok, serve_in_background, unique

from mags import MagsConflictError, MagsError, MagsNotFoundError


class AliasTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_an_alias_routes_requests_to_the_workspace_sandbox(self) -> None:
        ws = unique("py-alias-ws")
        sub = unique("pyalias")
        self.m.new(ws, persistent=True)
        self.addCleanup(self._stop, ws)
        self.m.exec(ws, "mkdir -p /srv && echo via-alias > /srv/index.html")
        serve_in_background(self.m, ws, 8080)
        alias = self.m.url_alias_create(sub, ws)
        self.addCleanup(self._delete_alias, sub)
        self.assertEqual((alias["subdomain"], alias["workspace_id"]), (sub, ws))
        self.assertIn(sub, alias["url"])
        host = f"{sub}.{alias['domain']}"
        _, body = router_ok(host)
        self.assertEqual(body.strip(), "via-alias")
        self.assertIn(sub, [a["subdomain"] for a in self.m.url_alias_list()])
        with self.assertRaises(MagsConflictError):
            self.m.url_alias_create(sub, ws)
        self.assertEqual(self.m.url_alias_delete(sub), {"success": True})
        self.assertEqual(router_get(host)[0], 404, "a removed alias reaches nothing")
        self.assertNotIn(sub, [a["subdomain"] for a in self.m.url_alias_list()])
        with self.assertRaises(MagsNotFoundError):
            self.m.url_alias_delete(sub)

    def _stop(self, ws: str) -> None:
        try:
            self.m.stop(ws)
            self.m.delete_workspace(ws, force=True)
        except MagsError:
            pass

    def _delete_alias(self, sub: str) -> None:
        try:
            self.m.url_alias_delete(sub)
        except MagsNotFoundError:
            pass


class CronTest(unittest.TestCase):
    def setUp(self) -> None:
        self.m = client()

    def test_a_cron_job_fires_and_can_be_changed_and_deleted(self) -> None:
        name = unique("py-cron")
        cron = self.m.cron_create(name=name, cron_expression="* * * * *", script="echo fired-by-cron")
        self.addCleanup(self._delete, cron["id"])
        self.assertEqual((cron["name"], cron["cron_expression"], cron["enabled"]), (name, "* * * * *", True))
        self.assertIsNotNone(cron["next_run_at"])
        self.assertIn(cron["id"], [c["id"] for c in self.m.cron_list()])
        # "Every minute" fires at the next minute's start: at most a minute away.
        fired = eventually(lambda: self.m.cron_get(cron["id"])["last_job_id"], "the cron job firing", timeout=90)
        job = self.m.wait(fired, 60)
        self.assertEqual(job["status"], "completed")
        self.assertEqual([e["message"] for e in self.m.logs(fired)], ["fired-by-cron"])
        runs = self.m.cron_get(name)["runs"]
        self.assertEqual(runs[0]["status"], "fired")
        updated = self.m.cron_update(cron["id"], enabled=False, cron_expression="0 0 * * *")
        self.assertEqual((updated["enabled"], updated["cron_expression"], updated["next_run_at"]), (False, "0 0 * * *", None))
        self.m.cron_delete(name)
        with self.assertRaises(MagsNotFoundError):
            self.m.cron_get(cron["id"])

    def test_a_bad_expression_is_refused_with_a_sentence(self) -> None:
        with self.assertRaises(MagsError) as ctx:
            self.m.cron_create(name=unique("py-bad"), cron_expression="every day", script="true")
        self.assertEqual(ctx.exception.status, 400)
        self.assertGreater(len(str(ctx.exception)), 10)
        with self.assertRaises(TypeError):
            self.m.cron_create(name="x", schedule="* * * * *", script="true")

    def _delete(self, id: str) -> None:
        try:
            self.m.cron_delete(id)
        except MagsNotFoundError:
            pass


class UsageTest(unittest.TestCase):
    def test_usage_counts_a_job(self) -> None:
        m = client()
        before = m.usage(window_days=1)
        self.assertEqual(before["window_days"], 1)
        self.assertEqual(len(before["days"]), 1)
        result = m.run_and_wait("echo counted")
        self.assertEqual(result["status"], "completed")
        after = eventually(
            lambda: (lambda u: u if u["totals"]["jobs"] > before["totals"]["jobs"] else None)(m.usage(1)),
            "usage counting the job",
            30,
        )
        self.assertGreater(after["totals"]["sandbox_seconds"], before["totals"]["sandbox_seconds"])
        self.assertEqual(after["days"][-1]["jobs"], after["totals"]["jobs"])
        self.assertEqual(len(m.usage()["days"]), 30, "the default window is 30 days")


if __name__ == "__main__":
    unittest.main()
