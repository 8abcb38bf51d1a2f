"""The shapes of what the SDK answers and takes, as TypedDicts with the REST wire's snake_case keys. Results are plain
dicts: ``result["status"]``, ``log["message"]``. tests/test_contract.py checks every one against the server's OpenAPI
document, so a field renamed or added on the server fails the SDK's tests before it reaches a user."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict, Union

# Python 3.9 has no NotRequired: a dict with optional keys is a total=False subclass of one with the required ones.

__all__ = [
    "JobStatusValue",
    "RunOptions",
    "NewOptions",
    "JobAccepted",
    "JobStatus",
    "JobList",
    "LogEntry",
    "RunAndWaitResult",
    "StopResult",
    "ExecResult",
    "ExecChunk",
    "WorkspaceInfo",
    "WorkspaceList",
    "DeleteResult",
    "SyncResult",
    "FileInfo",
    "AccessResult",
    "UrlAccessResult",
    "UrlAlias",
    "UrlAliasList",
    "CronCreateOptions",
    "CronUpdateOptions",
    "CronRun",
    "CronJob",
    "CronList",
    "UsageFigures",
    "UsageDay",
    "UsageReport",
    "PoolStatus",
]

JobStatusValue = Literal["accepted", "running", "sleeping", "completed", "failed", "error", "stopped"]
LogStream = Literal["stdout", "stderr", "system"]


class RunOptions(TypedDict, total=False):
    """Keyword options of ``run``, ``run_and_wait`` and ``run_stream``: the reference's names plus the API's limits."""

    #: A name to find the job by (``status(name)``, ``stop(name)``).
    name: str
    #: Name the workspace. Local only unless ``persistent=True``.
    workspace_id: str
    #: Mount a persistent workspace read-only as the base image.
    base_workspace_id: str
    #: Keep the sandbox alive and sync the workspace to the object store; files persist indefinitely.
    persistent: bool
    #: No workspace, no sync (fastest).
    ephemeral: bool
    #: Never auto-sleep, and start again when the sandbox dies (requires ``persistent=True``).
    no_sleep: bool
    #: Command run in the background at every start of the sandbox (the first, and every wake from stopped).
    startup_command: str
    #: Environment variables for the script.
    environment: Dict[str, str]
    #: Uploaded files (``upload_files``), placed in /uploads/ before the script starts.
    file_ids: List[str]
    #: Disk size of the workspace in GB (server default 2).
    disk_gb: int
    #: Open a public URL (requires ``persistent=True``); ``port`` is the port it reaches (default 8080).
    url: bool
    port: int
    #: With ``url``: the URL answers only requests carrying your token.
    url_private: bool
    #: CPU share in cores (default 1).
    vcpus: float
    #: Memory limit in MB (default 1024).
    memory_mb: int
    #: Wall-clock limit in seconds (default 3600); the sandbox is killed when it passes.
    timeout_s: int
    #: ``internet`` (default) or ``none``.
    network: Literal["internet", "none"]


class NewOptions(TypedDict, total=False):
    """Keyword options of ``new``: the sandbox's workspace and limits (``mags new NAME -p --base B --disk N``)."""

    name: str
    persistent: bool
    base_workspace_id: str
    no_sleep: bool
    startup_command: str
    environment: Dict[str, str]
    disk_gb: int
    url: bool
    port: int
    url_private: bool
    vcpus: float
    memory_mb: int
    network: Literal["internet", "none"]


class JobAccepted(TypedDict):
    """What ``run`` answers: the job was accepted and starts as soon as a sandbox is free."""

    request_id: str
    status: Literal["accepted"]
    message: str


class _JobStatusWire(TypedDict):
    request_id: str
    name: Optional[str]
    status: JobStatusValue
    workspace_id: Optional[str]
    vm_id: Optional[str]
    subdomain: Optional[str]
    url: Optional[str]
    #: The script's exit code (128+signal when killed); None while it runs or when it never ran.
    exit_code: Optional[int]
    script_duration_ms: Optional[int]
    created_at: str
    started_at: Optional[str]
    completed_at: Optional[str]
    #: Why the platform failed or killed the job (e.g. a timeout); None otherwise.
    error_message: Optional[str]
    script: str


class JobStatus(_JobStatusWire, total=False):
    """A job as ``status``, ``list_jobs``, ``find_job``, ``new`` and ``update_job`` answer it (ISO-8601 times)."""

    #: A sandbox that stays up (``new``) and takes execs.
    long_lived: bool
    #: Never sleeps, and starts again when it dies (``update_job(no_sleep=...)`` changes it).
    no_sleep: bool


class JobList(TypedDict):
    """``list_jobs``: recent jobs, newest first."""

    jobs: List[JobStatus]
    page: int
    page_size: int
    total: int


class LogEntry(TypedDict):
    """One output line of a job: ``seq`` counts from 1 in output order."""

    seq: int
    timestamp: str
    level: Literal["info", "error"]
    stream: LogStream
    message: str


class RunAndWaitResult(TypedDict):
    """``run_and_wait``: the job once it has ended, with all its output lines."""

    request_id: str
    status: JobStatusValue
    exit_code: Optional[int]
    logs: List[LogEntry]
    duration_ms: Optional[int]
    error_message: Optional[str]


class StopResult(TypedDict):
    success: bool
    request_id: str
    status: JobStatusValue


class _ExecResultWire(TypedDict):
    exit_code: Optional[int]
    stdout: str
    stderr: str
    #: ``exited``, ``timeout`` (killed at ``timeout_s``) or ``killed``.
    reason: Literal["exited", "timeout", "killed"]
    #: More than 16 MiB were written: the rest was dropped (``exec_stream`` carries all).
    truncated: bool


class ExecResult(_ExecResultWire):
    """``exec``: the command's exit code and output. ``output`` is the reference's name for ``stdout``."""

    output: str


class ExecChunk(TypedDict):
    """``exec_stream``: bytes the command wrote on one of its streams, as it wrote them."""

    stream: Literal["stdout", "stderr"]
    data: bytes


class WorkspaceInfo(TypedDict):
    name: str
    #: The same as ``name`` (the hosted service's clients read this key).
    workspace_id: str
    mode: Literal["local", "persistent"]
    disk_gb: int
    size_bytes: int
    files: int
    versions: int
    current_version: Optional[int]
    #: The base it was created on, as NAME@VERSION.
    base: Optional[str]
    #: Request id of the unfinished job using it.
    in_use_by: Optional[str]
    created_at: str
    last_used_at: Optional[str]
    expires_at: Optional[str]


class WorkspaceList(TypedDict):
    workspaces: List[WorkspaceInfo]


class DeleteResult(TypedDict):
    success: bool
    name: str


class SyncResult(TypedDict):
    success: bool
    name: str
    #: The version stored (None when the workspace has none yet).
    version: Optional[int]
    #: Whether anything had changed since the last version.
    changed: bool


class FileInfo(TypedDict):
    file_id: str
    #: The basename it appears as under /uploads/.
    name: str
    size: int
    sha256: str
    created_at: str


class AccessResult(TypedDict):
    """``enable_access(id, 22)``: a fresh key that opens this sandbox only, and where the SSH gateway listens."""

    success: bool
    ssh_host: str
    ssh_port: int
    ssh_user: str
    ssh_private_key: str


class _UrlAccessWire(TypedDict):
    success: bool
    url: str
    port: int
    subdomain: str
    private: bool


class UrlAccessResult(_UrlAccessWire, total=False):
    """``url`` (and ``enable_access`` for a port other than 22): the URL reaching that port of the sandbox."""

    #: Private URLs only: a one-time link (10 minutes) that lets the browser opening it use the URL.
    login_url: str


class UrlAlias(TypedDict):
    id: str
    subdomain: str
    workspace_id: str
    domain: str
    url: str
    created_at: str


class UrlAliasList(TypedDict):
    aliases: List[UrlAlias]


class _CronCreateRequired(TypedDict):
    name: str
    #: Standard 5 fields: minute hour day-of-month month day-of-week, e.g. "0 0 * * *".
    cron_expression: str
    script: str


class CronCreateOptions(_CronCreateRequired, total=False):
    """``cron_create`` keyword options."""

    workspace_id: str
    persistent: bool
    #: IANA time zone the expression is read in (default UTC).
    timezone: Optional[str]
    enabled: bool


class CronUpdateOptions(TypedDict, total=False):
    """``cron_update`` keyword options: what to change (None removes the workspace or the time zone)."""

    name: str
    cron_expression: str
    script: str
    workspace_id: Optional[str]
    persistent: bool
    timezone: Optional[str]
    enabled: bool


class CronRun(TypedDict):
    scheduled_at: str
    status: Literal["fired", "skipped"]
    job_id: Optional[str]
    reason: Optional[str]


class _CronJobWire(TypedDict):
    id: str
    name: str
    cron_expression: str
    script: str
    workspace_id: Optional[str]
    persistent: bool
    enabled: bool
    timezone: Optional[str]
    next_run_at: Optional[str]
    last_run_at: Optional[str]
    last_job_id: Optional[str]
    last_status: Optional[Literal["fired", "skipped"]]
    created_at: str
    updated_at: str


class CronJob(_CronJobWire, total=False):
    #: Only when one cron job is read (``cron_get``): its latest firings, newest first.
    runs: List[CronRun]


class CronList(TypedDict):
    cron_jobs: List[CronJob]


class UsageFigures(TypedDict):
    jobs: int
    sandbox_seconds: float
    cpu_seconds: float
    memory_gb_seconds: float
    egress_bytes: int
    storage_bytes: int


class UsageDay(UsageFigures):
    #: YYYY-MM-DD (UTC).
    date: str


class UsageReport(TypedDict):
    """``usage``: per UTC day over the window, oldest first, and the totals."""

    window_days: int
    days: List[UsageDay]
    totals: UsageFigures


class PoolStatus(TypedDict):
    idle_vms: int
    busy_vms: int
    sleeping_vms: int
    total_vms: int
    min_pool_size: int
    max_pool_size: int


#: What ``enable_access`` answers: SSH access for port 22, else the URL.
AccessAnswer = Union[AccessResult, UrlAccessResult]
