"""Where the SDK finds its server and token, in the Node SDK's order: explicit arguments, then MAGS_API_URL /
MAGS_API_TOKEN, then the config file ``mags login`` or ``mags server`` wrote ($MAGS_HOME/config.json, default
~/.mags/config.json), then the local embedded server's default address."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

DEFAULT_API_URL = "http://127.0.0.1:7373"


def mags_home(env: Mapping[str, str]) -> str:
    """The directory holding config.json: $MAGS_HOME or ~/.mags."""
    home = (env.get("MAGS_HOME") or "").strip()
    if home:
        if home == "~" or home.startswith("~/"):
            home = os.path.join(os.path.expanduser("~"), home[2:])
        return os.path.abspath(home)
    return os.path.join((env.get("HOME") or "").strip() or os.path.expanduser("~"), ".mags")


def config_path(env: Mapping[str, str]) -> str:
    return os.path.join(mags_home(env), "config.json")


def read_config_file(path: str) -> Dict[str, Any]:
    """The config file's contents; an absent file is empty, an unreadable or malformed one is an error saying where."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from err
    if text.strip() == "":
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; fix or delete it") from None
    if not isinstance(parsed, dict):
        raise ValueError(f'{path} must hold a JSON object such as {{"api_url": "…", "api_token": "…"}}')
    return parsed


def _non_empty(value: Any) -> Optional[str]:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def normalise_url(url: str) -> str:
    """``http://host:port`` without a trailing slash or ``/api/v1``; a bad URL is an error naming it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f'"{url}" is not a valid Mags server URL: it must look like {DEFAULT_API_URL} (http:// or https://)'
        )
    out = url.rstrip("/")
    if out.endswith("/api/v1"):
        out = out[: -len("/api/v1")]
    return out.rstrip("/")


def resolve_connection(
    api_url: Optional[str], api_token: Optional[str], env: Optional[Mapping[str, str]] = None
) -> Tuple[str, Optional[str]]:
    """The server address and token, in the documented order. A malformed file is an error, as in the Node SDK."""
    env = os.environ if env is None else env
    url = _non_empty(api_url) or _non_empty(env.get("MAGS_API_URL"))
    token = _non_empty(api_token) or _non_empty(env.get("MAGS_API_TOKEN"))
    file = read_config_file(config_path(env))
    url = url or _non_empty(file.get("api_url"))
    token = token or _non_empty(file.get("api_token"))
    return normalise_url(url or DEFAULT_API_URL), token
