"""Live output through the Python SDK: 10,000 lines written over a few seconds arrive in order and while the job
runs, through stream, run_stream and AsyncMags."""

from __future__ import annotations

import asyncio
import unittest

from tests.support import client

from mags import AsyncMags, MagsNotFoundError

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


if __name__ == "__main__":
    unittest.main()
