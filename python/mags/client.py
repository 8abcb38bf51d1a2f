"""The Mags class: every method of the reference's Python SDK (and a few more) over the public REST API, with the
wire's snake_case keys in options and results."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

from .config import resolve_connection
from .errors import MagsError, MagsNotFoundError, MagsTimeoutError
from .streaming import ExecStream, LogStream
from .transport import ProgressCallback, Transport, path_segment
from .types import (
    AccessResult,
    CronJob,
    DeleteResult,
    ExecResult,
    FileInfo,
    JobAccepted,
    JobList,
    JobStatus,
    LogEntry,
    PoolStatus,
    RunAndWaitResult,
    StopResult,
    SyncResult,
    UrlAccessResult,
    UrlAlias,
    UsageReport,
    WorkspaceInfo,
    WorkspaceList,
)

#: Every route this SDK calls, as (method, OpenAPI path). tests/test_contract.py checks it against the server's
#: OpenAPI document both ways (each exists; each route of the document is called or deliberately left out).
ROUTES: Tuple[Tuple[str, str], ...] = (
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/status"),
    ("POST", "/api/v1/mags-jobs"),
    ("GET", "/api/v1/mags-jobs"),
    ("GET", "/api/v1/mags-jobs/pool-status"),
    ("GET", "/api/v1/mags-jobs/{id}/status"),
    ("GET", "/api/v1/mags-jobs/{id}/logs"),
    ("POST", "/api/v1/mags-jobs/{id}/stop"),
    ("POST", "/api/v1/mags-jobs/{id}/exec"),
    ("PATCH", "/api/v1/mags-jobs/{id}"),
    ("DELETE", "/api/v1/mags-jobs/{id}"),
    ("POST", "/api/v1/mags-jobs/{id}/sync"),
    ("POST", "/api/v1/mags-jobs/{id}/access"),
    ("GET", "/api/v1/mags-workspaces"),
    ("GET", "/api/v1/mags-workspaces/{name}"),
    ("DELETE", "/api/v1/mags-workspaces/{name}"),
    ("POST", "/api/v1/mags-workspaces/{name}/sync"),
    ("POST", "/api/v1/mags-workspaces/{name}/resize"),
    ("GET", "/api/v1/mags-files"),
    ("POST", "/api/v1/mags-files"),
    ("DELETE", "/api/v1/mags-files/{id}"),
    ("POST", "/api/v1/mags-url-aliases"),
    ("GET", "/api/v1/mags-url-aliases"),
    ("DELETE", "/api/v1/mags-url-aliases/{subdomain}"),
    ("POST", "/api/v1/mags-cron"),
    ("GET", "/api/v1/mags-cron"),
    ("GET", "/api/v1/mags-cron/{id}"),
    ("PATCH", "/api/v1/mags-cron/{id}"),
    ("DELETE", "/api/v1/mags-cron/{id}"),
    ("GET", "/api/v1/mags-usage"),
)

#: The run options that go into the submission as they are (the reference's names are the wire's).
RUN_OPTIONS = (
    "name",
    "workspace_id",
    "base_workspace_id",
    "persistent",
    "ephemeral",
    "no_sleep",
    "startup_command",
    "environment",
    "file_ids",
    "disk_gb",
    "url",
    "port",
    "url_private",
    "vcpus",
    "memory_mb",
    "timeout_s",
    "network",
)
NEW_OPTIONS = tuple(k for k in RUN_OPTIONS if k not in ("workspace_id", "ephemeral", "file_ids", "timeout_s"))
CRON_OPTIONS = ("name", "cron_expression", "script", "workspace_id", "persistent", "timezone", "enabled")

#: Longest long-poll the server accepts (``?wait=``), in seconds.
MAX_WAIT_S = 60.0
#: Lines per page when reading a job's whole output.
LOG_PAGE = 10_000
#: Extra wait for operations that move a workspace to or from the object store (sync, delete).
TRANSFER_HOLD_S = 30 * 60.0
#: Extra wait for operations the agent carries out on a workspace disk (resize).
AGENT_HOLD_S = 5 * 60.0
ENDED = ("completed", "failed", "error", "stopped", "sleeping")


def _pick(opts: Mapping[str, Any], allowed: Sequence[str], what: str) -> Dict[str, Any]:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise TypeError(f"{what} got unknown option(s) {', '.join(unknown)}; the options are {', '.join(allowed)}")
    return {k: v for k, v in opts.items() if v is not None}


def script_ended(status: str) -> bool:
    """Whether a job's script has ended: a terminal status, or ``sleeping`` (a persistent sandbox whose script ended)."""
    return status in ENDED


class Mags:
    """A client of a Mags server.

    >>> from mags import Mags
    >>> m = Mags()  # MAGS_API_TOKEN / MAGS_API_URL, else ~/.mags/config.json
    >>> result = m.run_and_wait("echo Hello World")
    >>> result["status"], [line["message"] for line in result["logs"]]

    ``api_token`` and ``api_url`` override the environment and the config file. ``timeout`` is the longest wait, in
    seconds, for the answer to one request (long-polls and streams add their own wait). Failures raise a MagsError
    (``status``, ``code``, message): MagsAuthError, MagsNotFoundError, MagsConflictError, MagsTimeoutError and
    MagsConnectionError are its kinds. Reads (GET, DELETE) are retried with backoff on a connection error or a 503;
    submissions are never repeated.
    """

    def __init__(
        self,
        api_token: Optional[str] = None,
        api_url: Optional[str] = None,
        timeout: float = 30.0,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        url, token = resolve_connection(api_url, api_token, env)
        self.api_url = url
        self._http = Transport(url, token, float(timeout))

    @property
    def has_token(self) -> bool:
        """Whether a token was configured (without one, every call but health answers unauthorized)."""
        return bool(self._http.api_token)

    # ── jobs ──────────────────────────────────────────────────────────────────────────────────────────────────

    def run(self, script: str, **opts: Any) -> JobAccepted:
        """Submits a script; returns at once with ``request_id``. Options: see RunOptions (``workspace_id``,
        ``persistent``, ``base_workspace_id``, ``no_sleep``, ``ephemeral``, ``file_ids``, ``startup_command``,
        ``memory_mb``, ``vcpus``, ``timeout_s``, ``network``, ``environment``, ``disk_gb``, ``name``, ``url``, ``port``)."""
        body = {"type": "inline", "script": script, **_pick(opts, RUN_OPTIONS, "run()")}
        return cast(JobAccepted, self._http.json("POST", "/api/v1/mags-jobs", body=body))

    def run_and_wait(self, script: str, timeout: Optional[float] = None, **opts: Any) -> RunAndWaitResult:
        """Submits a script and blocks until it ends; returns ``status``, ``exit_code``, all ``logs`` and more.
        ``timeout`` (seconds) bounds the wait: past it a MagsTimeoutError carrying ``request_id`` is raised and the
        job keeps running."""
        started = time.monotonic()
        request_id = self.run(script, **opts)["request_id"]
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return self.result(request_id, left)

    def result(self, request_id: str, timeout: Optional[float] = None) -> RunAndWaitResult:
        """Waits for a submitted job to end and returns what run_and_wait returns."""
        job = self.wait(request_id, timeout)
        return {
            "request_id": job["request_id"],
            "status": job["status"],
            "exit_code": job["exit_code"],
            "logs": self.logs(request_id),
            "duration_ms": job["script_duration_ms"],
            "error_message": job["error_message"],
        }

    def wait(self, name_or_id: str, timeout: Optional[float] = None) -> JobStatus:
        """Waits (server long-poll) until a job's script has ended and returns its state; ``timeout`` in seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = MAX_WAIT_S if deadline is None else deadline - time.monotonic()
            wait_s = max(0.0, min(MAX_WAIT_S, remaining))
            asked = time.monotonic()
            job = self._status(name_or_id, wait_s)
            if script_ended(job["status"]):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise MagsTimeoutError(
                    f"job {job['request_id']} did not end within {timeout:g} s (it is {job['status']}; it keeps "
                    f'running: stop it with stop("{job["request_id"]}"))',
                    job["request_id"],
                )
            # A server that answers before the wait is up without an ended job: do not spin.
            if time.monotonic() - asked < 0.2:
                time.sleep(0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic())))

    def status(self, request_id: str) -> JobStatus:
        """A job's status, by request id or name."""
        return self._status(request_id, 0.0)

    def _status(self, name_or_id: str, wait_s: float) -> JobStatus:
        wait = round(wait_s, 3) if wait_s > 0 else None
        return cast(
            JobStatus,
            self._http.json(
                "GET",
                f"/api/v1/mags-jobs/{path_segment(name_or_id)}/status",
                query={"wait": wait},
                hold=wait or 0.0,
                request_id=name_or_id,
            ),
        )

    def logs(self, request_id: str, after: int = 0) -> List[LogEntry]:
        """A job's output lines in order: each ``{"seq", "timestamp", "level", "stream", "message"}`` (all of them,
        or those after the ``seq`` ``after``)."""
        out: List[LogEntry] = []
        while True:
            page = self._http.json(
                "GET",
                f"/api/v1/mags-jobs/{path_segment(request_id)}/logs",
                query={"after": after, "limit": LOG_PAGE},
                request_id=request_id,
            )["logs"]
            out.extend(page)
            if len(page) < LOG_PAGE:
                return out
            after = page[-1]["seq"]

    def stream(self, request_id: str, after: int = 0) -> LogStream:
        """Follows a job's output live (Server-Sent Events): iterate the answer for log entries as they are written;
        iteration ends when the job ends, and ``.status`` is then its final state."""
        return LogStream(self._http, request_id, after)

    def run_stream(self, script: str, **opts: Any) -> LogStream:
        """Submits a script and follows its output live: ``for line in m.run_stream("make"): print(line["message"])``.
        The job's id is ``.request_id``; its final state ``.status`` once the loop has ended."""
        accepted = self.run(script, **opts)
        return LogStream(self._http, accepted["request_id"])

    def list_jobs(self, page: Optional[int] = None, page_size: Optional[int] = None) -> JobList:
        """Recent jobs, newest first: ``{"jobs": [...], "page", "page_size", "total"}``."""
        return cast(JobList, self._http.json("GET", "/api/v1/mags-jobs", query={"page": page, "page_size": page_size}))

    def update_job(self, request_id: str, **opts: Any) -> JobStatus:
        """Changes a running or sleeping job's settings (by request id, job name or workspace name): ``no_sleep``
        (an always-on sandbox that sleeps is woken) and ``startup_command`` (None removes it)."""
        unknown = sorted(set(opts) - {"no_sleep", "startup_command"})
        if unknown:
            raise TypeError(f"update_job() got unknown option(s) {', '.join(unknown)}; the options are no_sleep, startup_command")
        return cast(
            JobStatus,
            self._http.json(
                "PATCH",
                f"/api/v1/mags-jobs/{path_segment(request_id)}",
                body=dict(opts),
                request_id=request_id,
                # Making an always-on sandbox that sleeps run again may restore its workspace first.
                hold=70.0,
            ),
        )

    def stop(self, name_or_id: str) -> StopResult:
        """Stops a running job (by request id, name or workspace); returns once it has stopped."""
        return cast(
            StopResult,
            self._http.json(
                "POST", f"/api/v1/mags-jobs/{path_segment(name_or_id)}/stop", request_id=name_or_id, hold=15.0
            ),
        )

    def delete_job(self, request_id: str) -> None:
        """Deletes a finished job and its output (a job that has not finished: MagsConflictError)."""
        self._http.json("DELETE", f"/api/v1/mags-jobs/{path_segment(request_id)}", request_id=request_id, allow_empty=True)

    def find_job(self, name_or_id: str) -> Optional[JobStatus]:
        """The job with this request id, else the newest running (or sleeping) job with this name or on the
        workspace of this name, else the newest job of that name or on that workspace; None if none."""
        recent: List[JobStatus] = []
        for page in range(1, 6):
            listed = self.list_jobs(page=page, page_size=100)
            recent.extend(listed["jobs"])
            if page * listed["page_size"] >= listed["total"]:
                break
        for j in recent:
            if j["request_id"] == name_or_id.lower():
                return j
        named = [j for j in recent if j["name"] == name_or_id or j["workspace_id"] == name_or_id]
        for j in named:
            if j["status"] in ("running", "sleeping"):
                return j
        if named:
            return named[0]
        try:
            return self.status(name_or_id)
        except MagsNotFoundError:
            return None

    def new(self, name: str, timeout: float = 300.0, **opts: Any) -> JobStatus:
        """Starts a sandbox that stays up on workspace ``name`` (created if missing; synced to the object store with
        ``persistent=True``) and returns once it runs. Run commands in it with ``exec(name, ...)``; end it with
        ``stop(name)``."""
        body = {"type": "inline", "long_lived": True, "workspace_id": name, **_pick(opts, NEW_OPTIONS, "new()")}
        accepted = self._http.json("POST", "/api/v1/mags-jobs", body=body)
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(accepted["request_id"])
            if job["status"] == "running":
                return job
            if script_ended(job["status"]):
                why = f": {job['error_message']}" if job["error_message"] else ""
                raise MagsError(
                    0, "sandbox_failed", f"the sandbox on {name} did not start ({job['status']}{why})", job["request_id"]
                )
            if time.monotonic() >= deadline:
                raise MagsTimeoutError(
                    f"the sandbox on {name} is not running yet ({job['status']}); it may still start", job["request_id"]
                )
            time.sleep(0.1)

    def exec(
        self,
        name: str,
        command: str,
        timeout_s: Optional[int] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> ExecResult:
        """Runs ``command`` with /bin/sh -c in a running sandbox (by workspace name, job name or request id) and
        returns once it has ended: ``exit_code``, ``stdout``, ``stderr`` (``output`` is the reference's name for
        ``stdout``), ``reason``. A non-zero exit is not an error."""
        body = _exec_body(command, timeout_s, env, cwd)
        r = self._http.json(
            "POST",
            f"/api/v1/mags-jobs/{path_segment(name)}/exec",
            body=body,
            request_id=name,
            hold=float(timeout_s if timeout_s is not None else 3600) + 30.0,
        )
        r["output"] = r["stdout"]
        return cast(ExecResult, r)

    def exec_stream(
        self,
        name: str,
        command: str,
        timeout_s: Optional[int] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> ExecStream:
        """Runs ``command`` in a running sandbox and streams its output as it is written (bytes exactly, stdout and
        stderr apart); after the loop, ``.exit_code`` and ``.reason``. The command starts when iteration starts."""
        return ExecStream(self._http, name, _exec_body(command, timeout_s, env, cwd))

    def pool_status(self) -> PoolStatus:
        """Warm sandboxes over all the server's agents."""
        return cast(PoolStatus, self._http.json("GET", "/api/v1/mags-jobs/pool-status"))

    def server_status(self) -> Dict[str, Any]:
        """The server, its agents and the calling user."""
        return cast(Dict[str, Any], self._http.json("GET", "/api/v1/status"))

    # ── access and URLs ───────────────────────────────────────────────────────────────────────────────────────

    def enable_access(self, id: str, port: int = 22, private: Optional[bool] = None) -> Union[AccessResult, UrlAccessResult]:
        """Opens access to a port of a sandbox (by request id or name). Port 22 gives SSH: ``ssh_host``,
        ``ssh_port``, ``ssh_user`` and a fresh ``ssh_private_key`` that opens this sandbox alone. Any other port
        gives the sandbox's URL (as ``url``)."""
        body: Dict[str, Any] = {"port": port}
        if private is not None and port != 22:
            body["private"] = private
        return cast(
            Union[AccessResult, UrlAccessResult],
            self._http.json("POST", f"/api/v1/mags-jobs/{path_segment(id)}/access", body=body, request_id=id),
        )

    def url(self, name_or_id: str, port: int = 8080, private: Optional[bool] = None) -> UrlAccessResult:
        """Opens the sandbox's public URL (by workspace name, job name or request id) to ``port`` and returns it:
        ``info["url"]``. ``private=True``: only requests with your token are answered."""
        if port == 22:
            raise ValueError("port 22 is SSH: use enable_access(id, 22)")
        return cast(UrlAccessResult, self.enable_access(name_or_id, port, private))

    def url_alias_create(self, sub: str, ws_id: str, domain: Optional[str] = None) -> UrlAlias:
        """Gives workspace ``ws_id`` the stable URL ``<sub>.<apps-domain>`` (it follows the workspace's sandbox)."""
        body: Dict[str, Any] = {"subdomain": sub, "workspace_id": ws_id}
        if domain is not None:
            body["domain"] = domain
        return cast(UrlAlias, self._http.json("POST", "/api/v1/mags-url-aliases", body=body))

    def url_alias_list(self) -> List[UrlAlias]:
        """Your URL aliases, oldest first."""
        return cast(List[UrlAlias], self._http.json("GET", "/api/v1/mags-url-aliases")["aliases"])

    def url_alias_delete(self, sub: str) -> Dict[str, bool]:
        """Removes one of your URL aliases; its URL answers 404 from then on."""
        return cast(Dict[str, bool], self._http.json("DELETE", f"/api/v1/mags-url-aliases/{path_segment(sub)}"))

    # ── workspaces ────────────────────────────────────────────────────────────────────────────────────────────

    def list_workspaces(self) -> WorkspaceList:
        """Your workspaces (local and persistent): ``{"workspaces": [...]}``."""
        return cast(WorkspaceList, self._http.json("GET", "/api/v1/mags-workspaces"))

    def get_workspace(self, name: str) -> WorkspaceInfo:
        """One workspace by name (MagsNotFoundError if you have none of that name)."""
        return cast(WorkspaceInfo, self._http.json("GET", f"/api/v1/mags-workspaces/{path_segment(name)}"))

    def delete_workspace(self, id: str, force: bool = False) -> DeleteResult:
        """Deletes a workspace with all its versions and cloud data. While an unfinished job uses it the server
        refuses (MagsConflictError) unless ``force=True``."""
        return cast(
            DeleteResult,
            self._http.json(
                "DELETE",
                f"/api/v1/mags-workspaces/{path_segment(id)}",
                query={"force": True if force else None},
                hold=TRANSFER_HOLD_S,
            ),
        )

    def sync(self, request_id: str) -> SyncResult:
        """Syncs the workspace of a job (by request id or name) to the object store now; returns once it is stored."""
        return cast(
            SyncResult,
            self._http.json(
                "POST", f"/api/v1/mags-jobs/{path_segment(request_id)}/sync", request_id=request_id, hold=TRANSFER_HOLD_S
            ),
        )

    def sync_workspace(self, name: str) -> SyncResult:
        """Syncs a workspace (by name) to the object store now."""
        return cast(
            SyncResult,
            self._http.json("POST", f"/api/v1/mags-workspaces/{path_segment(name)}/sync", hold=TRANSFER_HOLD_S),
        )

    def resize(self, workspace: str, disk_gb: int) -> WorkspaceInfo:
        """Sets the disk size of a workspace in GB; a size below what its files take is refused."""
        return cast(
            WorkspaceInfo,
            self._http.json(
                "POST",
                f"/api/v1/mags-workspaces/{path_segment(workspace)}/resize",
                body={"disk_gb": disk_gb},
                hold=AGENT_HOLD_S,
            ),
        )

    # ── files ─────────────────────────────────────────────────────────────────────────────────────────────────

    def upload(
        self, path: Union[str, "os.PathLike[str]"], name: Optional[str] = None, progress: Optional[ProgressCallback] = None
    ) -> FileInfo:
        """Uploads a local file, streamed from disk; returns its record (``file_id``, ``name``, ``size``,
        ``sha256``). ``progress(sent, total)`` is called as bytes go out."""
        p = os.fspath(path)
        if not os.path.isfile(p):
            why = "no such file" if not os.path.exists(p) else "it is not a regular file"
            raise MagsError(0, "invalid_request", f"cannot upload {p}: {why}")
        return cast(FileInfo, self._http.upload("/api/v1/mags-files", {"name": name or os.path.basename(p)}, p, progress))

    def upload_file(
        self, path: Union[str, "os.PathLike[str]"], name: Optional[str] = None, progress: Optional[ProgressCallback] = None
    ) -> str:
        """Uploads a local file, streamed from disk (never whole in memory); returns its file id, to pass in
        ``file_ids``. It appears as /uploads/<name> (default: its basename) before the script starts."""
        return self.upload(path, name, progress)["file_id"]

    def upload_files(
        self, paths: Sequence[Union[str, "os.PathLike[str]"]], progress: Optional[ProgressCallback] = None
    ) -> List[str]:
        """Uploads local files one after the other; returns their file ids in the same order."""
        if isinstance(paths, (str, bytes)):
            raise TypeError("upload_files() takes a list of paths; use upload_file() for one")
        return [self.upload_file(p, progress=progress) for p in paths]

    def list_files(self) -> List[FileInfo]:
        """Your uploaded files."""
        return cast(List[FileInfo], self._http.json("GET", "/api/v1/mags-files")["files"])

    def delete_file(self, file_id: str) -> None:
        """Deletes an uploaded file."""
        self._http.json("DELETE", f"/api/v1/mags-files/{path_segment(file_id)}", allow_empty=True)

    # ── cron and usage ────────────────────────────────────────────────────────────────────────────────────────

    def cron_create(self, **opts: Any) -> CronJob:
        """Creates a cron job: ``name``, ``cron_expression`` (standard 5 fields, UTC unless ``timezone``),
        ``script``; optional ``workspace_id``, ``persistent``, ``enabled``. Each firing is an ordinary job named
        after it."""
        return cast(CronJob, self._http.json("POST", "/api/v1/mags-cron", body=_pick(opts, CRON_OPTIONS, "cron_create()")))

    def cron_list(self) -> List[CronJob]:
        """Your cron jobs, oldest first."""
        return cast(List[CronJob], self._http.json("GET", "/api/v1/mags-cron")["cron_jobs"])

    def cron_get(self, id: str) -> CronJob:
        """One cron job (by id or name) with its latest firings (``runs``)."""
        return cast(CronJob, self._http.json("GET", f"/api/v1/mags-cron/{path_segment(id)}"))

    def cron_update(self, id: str, **opts: Any) -> CronJob:
        """Changes a cron job (by id or name): ``m.cron_update(id, enabled=False)``. None removes ``workspace_id``
        or ``timezone``."""
        unknown = sorted(set(opts) - set(CRON_OPTIONS))
        if unknown:
            raise TypeError(f"cron_update() got unknown option(s) {', '.join(unknown)}; the options are {', '.join(CRON_OPTIONS)}")
        return cast(CronJob, self._http.json("PATCH", f"/api/v1/mags-cron/{path_segment(id)}", body=dict(opts)))

    def cron_delete(self, id: str) -> None:
        """Deletes a cron job (by id or name); the jobs it fired stay."""
        self._http.json("DELETE", f"/api/v1/mags-cron/{path_segment(id)}", allow_empty=True)

    def usage(self, window_days: Optional[int] = None) -> UsageReport:
        """Your usage per UTC day over the last ``window_days`` days (default 30): jobs, sandbox, CPU and memory
        time, egress bytes, storage held; and ``totals``."""
        return cast(UsageReport, self._http.json("GET", "/api/v1/mags-usage", query={"window_days": window_days}))

    def health(self, timeout: float = 2.0) -> bool:
        """Whether the server answers ``GET /api/v1/health`` (no token needed); never raises."""
        probe = Transport(self.api_url, None, timeout)
        probe.backoff_s = 0.0
        try:
            return probe.json("GET", "/api/v1/health").get("ok") is True
        except MagsError:
            return False


def _exec_body(command: str, timeout_s: Optional[int], env: Optional[Dict[str, str]], cwd: Optional[str]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"command": command}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if env is not None:
        body["env"] = env
    if cwd is not None:
        body["cwd"] = cwd
    return body
