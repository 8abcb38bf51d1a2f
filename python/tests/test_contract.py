"""The Python SDK against the server's OpenAPI document (GET /api/v1/openapi.json, generated from the TypeBox
schemas in packages/api): every route the SDK calls exists, every route of the document is called or deliberately
left out, and every TypedDict has exactly the fields, requiredness and types of its schema. A route or field that
changes on the server fails here, not in a user's program. (Mypy is not available: this is the type check.)"""

from __future__ import annotations

import copy
import inspect
import typing
import unittest
from typing import Any, Dict, List, Tuple

from tests.support import openapi

import mags.types as t
from mags import Mags
from mags.client import CRON_OPTIONS, NEW_OPTIONS, ROUTES, RUN_OPTIONS

#: Routes of the API the Python SDK does not call, and why. A route added to the server must be classified here or
#: called by the SDK.
NOT_CALLED = {
    ("GET", "/api/v1/openapi.json"): "the document itself",
    ("POST", "/api/v1/mags-workspaces"): "workspaces are created by run/new (as in the reference)",
    ("GET", "/api/v1/mags-workspaces/{name}/versions"): "versions and rollback: the CLI and Node SDK",
    ("POST", "/api/v1/mags-workspaces/{name}/restore"): "versions and rollback: the CLI and Node SDK",
    ("POST", "/api/v1/admin/gc"): "server administration",
    ("GET", "/api/v1/me"): "accounts: the CLI and Node SDK",
    ("PUT", "/api/v1/me/password"): "accounts",
    ("GET", "/api/v1/users"): "accounts (owner)",
    ("POST", "/api/v1/users"): "accounts (owner)",
    ("DELETE", "/api/v1/users/{name}"): "accounts (owner)",
    ("GET", "/api/v1/tokens"): "accounts",
    ("POST", "/api/v1/tokens"): "accounts",
    ("DELETE", "/api/v1/tokens/{id}"): "accounts",
    ("POST", "/api/v1/session"): "browser sign-in",
    ("DELETE", "/api/v1/session"): "browser sign-in",
    ("POST", "/api/v1/auth/device"): "mags login",
    ("POST", "/api/v1/auth/device/token"): "mags login",
    ("GET", "/api/v1/ssh-keys"): "SSH keys: the CLI and Node SDK",
    ("POST", "/api/v1/ssh-keys"): "SSH keys",
    ("DELETE", "/api/v1/ssh-keys/{id}"): "SSH keys",
}

JOB_BODY_NOT_OPTIONS = {"script", "type", "long_lived", "rootfs_type"}


def _ref(doc: Dict[str, Any], schema: Dict[str, Any]) -> Dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def response(doc: Dict[str, Any], method: str, path: str, status: str = "200", *inner: str) -> Dict[str, Any]:
    schema = doc["paths"][path][method.lower()]["responses"][status]["content"]["application/json"]["schema"]
    for step in inner:
        schema = _ref(doc, schema)
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return _ref(doc, schema)


def body(doc: Dict[str, Any], method: str, path: str) -> Dict[str, Any]:
    return _ref(doc, doc["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"])


def _enum_values(doc: Dict[str, Any], schema: Dict[str, Any]) -> Any:
    """The string values of an enum or a union of enums; None when it is not one."""
    schema = _ref(doc, schema)
    if "enum" in schema:
        return set(schema["enum"])
    if "anyOf" in schema:
        parts = [_enum_values(doc, s) for s in schema["anyOf"]]
        if all(p is not None for p in parts):
            return set().union(*parts)
    return None


def check_type(doc: Dict[str, Any], hint: Any, schema: Dict[str, Any], where: str, errors: List[str]) -> None:
    schema = _ref(doc, schema)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    variants = schema.get("anyOf")
    if variants is not None and any(_ref(doc, v).get("type") == "null" for v in variants):
        if not (origin is typing.Union and type(None) in args):
            errors.append(f"{where}: the API allows null, the SDK's type {hint} does not (use Optional)")
            return
        rest = [a for a in args if a is not type(None)]
        inner = typing.Union[tuple(rest)] if len(rest) > 1 else rest[0]
        others = [v for v in variants if _ref(doc, v).get("type") != "null"]
        check_type(doc, inner, others[0] if len(others) == 1 else {"anyOf": others}, where, errors)
        return
    if origin is typing.Union and type(None) in args:
        errors.append(f"{where}: the SDK's type {hint} allows None, the API does not")
        return
    values = _enum_values(doc, schema)
    if values is not None:
        if origin is not typing.Literal or set(args) != values:
            errors.append(f"{where}: the API allows {sorted(values)}, the SDK's type is {hint}")
        return
    kind = schema.get("type")
    simple = {"string": str, "integer": int, "number": float, "boolean": bool}
    if kind in simple:
        if hint is not simple[kind]:
            errors.append(f"{where}: the API's type is {kind}, the SDK's {hint}")
    elif kind == "array":
        if origin is not list:
            errors.append(f"{where}: the API's type is an array, the SDK's {hint}")
        else:
            check_type(doc, args[0], schema["items"], f"{where}[]", errors)
    elif kind == "object" and "properties" in schema:
        if not typing.is_typeddict(hint):
            errors.append(f"{where}: the API's type is an object with fields, the SDK's {hint}")
        else:
            check_fields(doc, hint, schema, where, errors)
    elif kind == "object":
        if origin is not dict:
            errors.append(f"{where}: the API's type is a map, the SDK's {hint}")
        else:
            check_type(doc, args[1], schema.get("additionalProperties", {}), f"{where}{{}}", errors)
    else:
        errors.append(f"{where}: a schema this test does not know how to compare: {schema}")


def check_fields(
    doc: Dict[str, Any],
    cls: Any,
    schema: Dict[str, Any],
    where: str,
    errors: List[str],
    ignore: Any = frozenset(),
    extra: Any = frozenset(),
    all_optional: bool = False,
) -> None:
    """A TypedDict against an object schema: the same keys (less ``ignore`` on the API's side, less ``extra`` on the
    SDK's), the same required ones (all optional for keyword options), and the same types."""
    hints = typing.get_type_hints(cls)
    props = {k: v for k, v in schema["properties"].items() if k not in ignore}
    sdk_keys = set(hints) - set(extra)
    for k in sorted(set(props) - sdk_keys):
        errors.append(f"{where}: the API has the field {k!r}, the SDK's {cls.__name__} does not")
    for k in sorted(sdk_keys - set(props)):
        errors.append(f"{where}: the SDK's {cls.__name__} has the field {k!r}, the API does not")
    required_api = set(schema.get("required", [])) - set(ignore)
    required_sdk = set(cls.__required_keys__) - set(extra)
    if all_optional:
        if required_sdk:
            errors.append(f"{where}: keyword options must all be optional, {sorted(required_sdk)} are required")
    elif required_api != required_sdk:
        errors.append(
            f"{where}: required fields differ: the API requires {sorted(required_api)}, "
            f"the SDK's {cls.__name__} {sorted(required_sdk)}"
        )
    for k in sorted(set(props) & sdk_keys):
        check_type(doc, hints[k], props[k], f"{where}.{k}", errors)


def contract_errors(doc: Dict[str, Any]) -> List[str]:
    """Every difference between the SDK and the document, as sentences."""
    errors: List[str] = []
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for r in ROUTES:
        if r not in routes:
            errors.append(f"the SDK calls {r[0]} {r[1]}, which the API does not have")
    for r in sorted(routes - set(ROUTES) - set(NOT_CALLED)):
        errors.append(f"the API has {r[0]} {r[1]}: call it from the SDK or list it in NOT_CALLED")
    for r in sorted(set(NOT_CALLED) - routes):
        errors.append(f"NOT_CALLED lists {r[0]} {r[1]}, which the API no longer has")
    if errors:
        return errors

    jobs, job, ws, cron = "/api/v1/mags-jobs", "/api/v1/mags-jobs/{id}", "/api/v1/mags-workspaces/{name}", "/api/v1/mags-cron"
    pairs: List[Tuple[Any, Dict[str, Any], Dict[str, Any]]] = [
        (t.JobAccepted, response(doc, "POST", jobs, "202"), {}),
        (t.JobStatus, response(doc, "GET", f"{job}/status"), {}),
        (t.JobStatus, response(doc, "PATCH", job), {}),
        (t.JobList, response(doc, "GET", jobs), {}),
        (t.LogEntry, response(doc, "GET", f"{job}/logs", "200", "logs", "[]"), {}),
        (t.StopResult, response(doc, "POST", f"{job}/stop"), {}),
        (t.ExecResult, response(doc, "POST", f"{job}/exec"), {"extra": {"output"}}),
        (t.SyncResult, response(doc, "POST", f"{job}/sync"), {}),
        (t.SyncResult, response(doc, "POST", f"{ws}/sync"), {}),
        (t.PoolStatus, response(doc, "GET", f"{jobs}/pool-status"), {}),
        (t.WorkspaceList, response(doc, "GET", "/api/v1/mags-workspaces"), {}),
        (t.WorkspaceInfo, response(doc, "GET", ws), {}),
        (t.WorkspaceInfo, response(doc, "POST", f"{ws}/resize"), {}),
        (t.DeleteResult, response(doc, "DELETE", ws), {}),
        (t.FileInfo, response(doc, "POST", "/api/v1/mags-files", "201"), {}),
        (t.FileInfo, response(doc, "GET", "/api/v1/mags-files", "200", "files", "[]"), {}),
        (t.AccessResult, _ref(doc, {"$ref": "#/components/schemas/AccessResult"}), {}),
        (t.UrlAccessResult, _ref(doc, {"$ref": "#/components/schemas/UrlAccessResult"}), {}),
        (t.UrlAlias, response(doc, "POST", "/api/v1/mags-url-aliases", "201"), {}),
        (t.UrlAliasList, response(doc, "GET", "/api/v1/mags-url-aliases"), {}),
        (t.CronJob, response(doc, "GET", f"{cron}/{{id}}"), {}),
        (t.CronJob, response(doc, "POST", cron, "201"), {}),
        (t.CronList, response(doc, "GET", cron), {}),
        (t.UsageReport, response(doc, "GET", "/api/v1/mags-usage"), {}),
        # Keyword options against request bodies.
        (t.RunOptions, body(doc, "POST", jobs), {"ignore": JOB_BODY_NOT_OPTIONS, "all_optional": True}),
        (
            t.NewOptions,
            body(doc, "POST", jobs),
            {"ignore": JOB_BODY_NOT_OPTIONS | {"workspace_id", "ephemeral", "file_ids", "timeout_s"}, "all_optional": True},
        ),
        (t.CronCreateOptions, body(doc, "POST", cron), {}),
        (t.CronUpdateOptions, body(doc, "PATCH", f"{cron}/{{id}}"), {"all_optional": True}),
    ]
    for cls, schema, opts in pairs:
        check_fields(doc, cls, schema, cls.__name__, errors, **opts)

    # The options each method passes on are the TypedDicts' keys, and its keyword arguments the request's fields.
    for names, cls in ((RUN_OPTIONS, t.RunOptions), (NEW_OPTIONS, t.NewOptions), (CRON_OPTIONS, t.CronCreateOptions)):
        if set(names) != set(typing.get_type_hints(cls)):
            errors.append(f"the options the client passes on differ from {cls.__name__}'s keys")
    exec_params = set(inspect.signature(Mags.exec).parameters) - {"self", "name"}
    if exec_params != set(body(doc, "POST", f"{job}/exec")["properties"]):
        errors.append(f"Mags.exec takes {sorted(exec_params)}, the exec request has other fields")
    patch = set(body(doc, "PATCH", job)["properties"])
    if patch != {"no_sleep", "startup_command"}:
        errors.append(f"update_job passes no_sleep and startup_command, the API now takes {sorted(patch)}")
    return errors


class ContractTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.doc = openapi()

    def test_the_sdk_matches_the_servers_openapi_document(self) -> None:
        errors = contract_errors(self.doc)
        self.assertEqual(errors, [], "\n".join(errors))

    def test_a_changed_route_or_field_is_caught(self) -> None:
        """The check itself: the same document with one thing changed must fail it."""
        renamed = copy.deepcopy(self.doc)
        props = renamed["components"]["schemas"]["JobStatus"]["properties"]
        props["exit_status"] = props.pop("exit_code")
        renamed["components"]["schemas"]["JobStatus"]["required"].append("exit_status")
        self.assertTrue(any("exit_status" in e for e in contract_errors(renamed)))

        retyped = copy.deepcopy(self.doc)
        retyped["components"]["schemas"]["WorkspaceInfo"]["properties"]["disk_gb"] = {"type": "string"}
        self.assertTrue(any("workspaces[].disk_gb" in e for e in contract_errors(retyped)))

        nullable = copy.deepcopy(self.doc)
        nullable["components"]["schemas"]["FileInfo"]["properties"]["sha256"] = {
            "anyOf": [{"type": "string"}, {"type": "null"}]
        }
        self.assertTrue(any("FileInfo.sha256" in e for e in contract_errors(nullable)))

        moved = copy.deepcopy(self.doc)
        moved["paths"]["/api/v1/mags-usage/v2"] = moved["paths"].pop("/api/v1/mags-usage")
        errs = contract_errors(moved)
        self.assertTrue(any("GET /api/v1/mags-usage" in e and "does not have" in e for e in errs), errs)
        self.assertTrue(any("/api/v1/mags-usage/v2" in e for e in errs))

        new_option = copy.deepcopy(self.doc)
        new_option["paths"]["/api/v1/mags-jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]["gpu"] = {"type": "integer"}
        self.assertTrue(any("'gpu'" in e and "RunOptions" in e for e in contract_errors(new_option)))


if __name__ == "__main__":
    unittest.main()
