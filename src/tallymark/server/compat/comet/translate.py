"""Translation between Comet's wire shapes and tallymark's service inputs and outputs.

Pure functions with no web framework: the HTTP routes and the offline-archive reader
(:mod:`tallymark.server.compat.comet.offline`) both use them, so a Comet notebook that logged online,
one uploaded with ``comet upload`` and one imported with ``tallymark upload KEY.zip`` all land the same.

Identifiers. Comet hands opaque string ids back and forth (project, artifact, artifact version, asset,
experiment model, registry model, registry model version). tallymark resolves things by name, so an
id here *is* the name, encoded: ``<kind>-<base64url of a JSON list>``. Ids survive restarts and work
across server workers without any state.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tallymark import jsonvalue
from tallymark.sdk.autolog.redact import redact_argv, redact_env, strip_url_credentials
from tallymark.storable import MAX_DEPTH, fits_int64

BACKEND_VERSION = "3.35.0"
"""What ``GET /clientlib/isAlive/ver`` answers. The SDK turns features on by backend version; this one
enables the registry API (>= 3.5.42), batched remote artifact assets (>= 3.12.26) and reading all
metrics in one call (>= 3.20.60), and keeps off those tallymark does not implement (>= 4.x)."""

DEFAULT_WORKSPACE = "default"
DEFAULT_PROJECT = "general"

# sdk_error_code values the SDK understands.
BACKEND_CUSTOM_ERROR = 7777777  # the SDK shows "msg" as is
EXPERIMENT_NOT_FOUND = 90210  # NO_WRITE_ACCESS_TO_EXPERIMENT: ExistingExperiment of an unknown key
EXPERIMENT_ALREADY_EXISTS = 90999  # an offline archive uploaded twice
ARTIFACT_NOT_FOUND = 624523

STATUS_TO_COMET = {
    "development": "Development",
    "staging": "Staging",
    "production": "Production",
    "archived": "Archived",
}
COMET_STATUSES = list(STATUS_TO_COMET.values())


class Refused(ValueError):
    """Input the adapter cannot translate; the message is meant for the notebook's author."""


# ----- ids -----


def make_id(kind: str, *parts: Any) -> str:
    raw = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode()
    return f"{kind}-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_id(kind: str, value: str | None, n: int) -> list[Any]:
    """The parts of an id made by :func:`make_id` (``kind`` and ``n`` parts), else :class:`Refused`."""
    if not value or not value.startswith(kind + "-"):
        raise Refused(f"{value!r} is not a {_KIND_NAMES.get(kind, kind)} id given out by this server")
    body = value[len(kind) + 1 :]
    try:
        parts = jsonvalue.parse(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), MAX_DEPTH)
    except (ValueError, TypeError):
        raise Refused(f"{value!r} is not a valid {_KIND_NAMES.get(kind, kind)} id") from None
    if not isinstance(parts, list) or len(parts) != n or not all(isinstance(p, (str, int)) for p in parts):
        raise Refused(f"{value!r} is not a valid {_KIND_NAMES.get(kind, kind)} id")
    return parts


_KIND_NAMES = {
    "p": "project",
    "a": "artifact",
    "av": "artifact version",
    "af": "artifact file",
    "em": "experiment model",
    "m": "registry model",
    "mv": "registry model version",
}


def project_id(workspace: str, project: str) -> str:
    return make_id("p", workspace, project)


def artifact_id(workspace: str, name: str) -> str:
    return make_id("a", workspace, name)


def artifact_version_id(workspace: str, name: str, version: str) -> str:
    return make_id("av", workspace, name, version)


def artifact_file_id(workspace: str, name: str, version: str, path: str) -> str:
    return make_id("af", workspace, name, version, path)


def model_id(workspace: str, name: str) -> str:
    return make_id("m", workspace, name)


def model_version_id(workspace: str, name: str, version: str) -> str:
    return make_id("mv", workspace, name, version)


def experiment_model_id(key: str, name: str) -> str:
    return make_id("em", key, name)


def batch_id(*parts: Any) -> str:
    """A batch id derived from the request itself: a retried request is applied once."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return "comet-" + h[:48]


# ----- values in -----


def metadata_in(value: Any) -> dict[str, Any] | None:
    """Comet sends metadata as a JSON-encoded string (sometimes an object, sometimes empty)."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = jsonvalue.parse(value, MAX_DEPTH, "the metadata")
        except jsonvalue.TooDeep as exc:
            raise Refused(str(exc)) from None
        except ValueError:
            raise Refused(f"metadata {value[:100]!r} is not JSON") from None
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise Refused("metadata must be a JSON object")
    return value


def param_name(name: Any) -> str:
    """Comet flattens nested parameters as ``a|b``; tallymark's convention is ``a.b``."""
    if not isinstance(name, str) or not name:
        raise Refused(f"parameter name {name!r} is not a non-empty string")
    return name.replace("|", ".")


def metric_value(value: Any) -> float | int | str:
    """A metric value as tallymark stores it; raise :class:`Refused` for text that is no number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        if value in ("NaN", "Infinity", "-Infinity"):
            return value
        try:
            f = float(value)
        except ValueError:
            raise Refused(f"{value[:100]!r} is not a number") from None
        if math.isfinite(f):
            return int(value) if value.strip().lstrip("+-").isdigit() else f
        return "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity")
    raise Refused(f"{value!r} is not a number")


def int_or_none(value: Any, what: str) -> int | None:
    if value is None or value == "" or value == "null":
        return None
    if isinstance(value, bool):
        raise Refused(f"{what} {value!r} is not an integer")
    try:
        n = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError, OverflowError):
        n = None
    if n is None:
        raise Refused(f"{what} {value!r:.100} is not an integer")
    if not fits_int64(n):
        raise Refused(f"{what} {value!r:.100} does not fit in 64 bits")
    return n


def metric_series(
    points: Iterable[Mapping[str, Any]], counts: Mapping[str, int], now_ms: int | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Comet metric points → tallymark metric columns, one series per name (in arrival order).

    A point without a step gets the metric's own count (tallymark's rule for ``log_metric`` without
    ``step``: 0, 1, 2, … per name); ``counts`` holds how many points each metric has already.
    Returns the series and a description of every point refused (a value that is no number).
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    series: dict[str, dict[str, list[Any]]] = {}
    refused: list[str] = []
    next_step = dict(counts)
    for p in points:
        name = p.get("metricName")
        if not isinstance(name, str) or not name:
            refused.append(f"a point without a metric name ({str(p)[:80]})")
            continue
        try:
            value = metric_value(p.get("metricValue"))
            step = int_or_none(p.get("step"), "step")
            epoch = int_or_none(p.get("epoch"), "epoch")
            ts = int_or_none(p.get("timestamp"), "timestamp")
        except Refused as exc:
            refused.append(f"metric {name!r}: {exc}")
            continue
        if step is None:
            step = next_step.get(name, 0)
        next_step[name] = next_step.get(name, 0) + 1
        s = series.setdefault(name, {"steps": [], "values": [], "timestamps": [], "epochs": []})
        s["steps"].append(step)
        s["values"].append(value)
        s["timestamps"].append(now if ts is None else ts)
        s["epochs"].append(epoch)
    out = []
    for name, cols in series.items():
        entry: dict[str, Any] = {"name": name, **cols}
        if all(e is None for e in cols["epochs"]):
            del entry["epochs"]
        out.append(entry)
    return out, refused


def params_in(values: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Comet parameter messages → ``{name: value}`` (the last value of a name wins)."""
    out: dict[str, Any] = {}
    for v in values:
        out[param_name(v.get("parameterName"))] = v.get("parameterValue")
    return out


def stdout_items(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Comet output lines → tallymark ``stdout`` items, consecutive lines of one stream joined."""
    out: list[dict[str, Any]] = []
    for line in sorted(lines, key=lambda x: x.get("offset") or 0):
        text = line.get("output")
        if not isinstance(text, str) or not text:
            continue
        stream = "stderr" if line.get("stderr") else "stdout"
        if out and out[-1]["data"]["stream"] == stream:
            out[-1]["data"]["text"] += text
        else:
            out.append({"kind": "stdout", "name": "stdout", "data": {"stream": stream, "text": text}})
    return out


def packages_item(installed: Iterable[object]) -> dict[str, Any]:
    """Comet's ``pip freeze``-style list → tallymark's ``packages`` item data (entries that are not
    strings, as an untrusted body may hold, are skipped)."""
    pkgs = []
    for line in installed:
        if not isinstance(line, str):
            continue
        name, sep, version = line.partition("==")
        if sep and name.strip():
            pkgs.append({"name": name.strip(), "version": version.strip()})
    pkgs.sort(key=lambda p: p["name"].lower())
    return {"packages": pkgs, "requirements": "".join(f"{p['name']}=={p['version']}\n" for p in pkgs)}


_ENVIRONMENT = {
    # Comet's system-details field → (tallymark environment group or None, field)
    "pythonVersion": ("python", "version"),
    "pythonVersionVerbose": ("python", "version_verbose"),
    "executable": ("python", "executable"),
    "osType": ("os", "system"),
    "osRelease": ("os", "release"),
    "machine": ("os", "machine"),
    "os": ("os", "platform"),
    "processor": ("cpu", "processor"),
    "hostname": (None, "hostname"),
    "user": (None, "user"),
    "pid": (None, "pid"),
    "ip": (None, "ip"),
    "totalRam": (None, "memory_total_bytes"),
    "gpuStaticInfoList": (None, "gpus"),
    "networkInterfaceIps": (None, "network_interface_ips"),
}


def environment_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """Comet's system details (all, or any one of them) → the ``environment`` item fields they set.

    Only the fields present are returned, nested the way tallymark's environment item is, so a
    partial update merges into what is there.
    """
    out: dict[str, Any] = {}
    for src, (group, field) in _ENVIRONMENT.items():
        if src in d:
            (out.setdefault(group, {}) if group else out)[field] = d[src]
    if "command" in d:
        command = d["command"]
        argv = command if isinstance(command, list) else ([command] if isinstance(command, str) else [])
        out["argv"] = redact_argv(argv)  # the comet_ml SDK sends sys.argv verbatim
    if "env" in d:
        out["env_vars"] = redact_env(d["env"]) if isinstance(d["env"], dict) else {}
    if isinstance(d.get("logAdditionalSystemInfoList"), list):
        out["system_info"] = {
            str(x.get("key")): x.get("value") for x in d["logAdditionalSystemInfoList"] if isinstance(x, dict)
        }
    return out


def deep_update(target: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``fields`` into ``target``, nested objects field by field."""
    for k, v in fields.items():
        if isinstance(v, Mapping) and isinstance(target.get(k), dict):
            deep_update(target[k], v)
        else:
            target[k] = v
    return target


def git_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """Comet's git metadata → tallymark ``git`` item fields (Comet's ``root`` is the first commit)."""
    branch = d.get("branch")
    if isinstance(branch, str):
        branch = branch.removeprefix("refs/heads/")
    return {
        "branch": branch or None,
        "commit": d.get("parent"),
        "remote_url": strip_url_credentials(d["origin"])
        if isinstance(d.get("origin"), str)
        else d.get("origin"),
        "root_commit": d.get("root"),
        "user": d.get("user"),
        "detached": not branch,
    }


def git_patch_text(data: bytes, limit: int) -> str:
    """The uncommitted diff from Comet's git-patch upload (a zip holding ``git_diff.patch``)."""
    if data[:4] == b"PK\x03\x04":
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                if not names:
                    return ""
                with zf.open(names[0]) as f:
                    data = f.read(limit + 1)
        except zipfile.BadZipFile:
            raise Refused("the git patch is not a valid zip") from None
        if len(data) > limit:
            raise Refused(f"the git patch is larger than {limit:,} bytes")
    return data.decode("utf-8", "replace")


def _json_bytes(data: bytes, what: str) -> Any:
    try:
        return jsonvalue.parse(data.decode("utf-8"), MAX_DEPTH, f"the {what}")
    except jsonvalue.TooDeep as exc:
        raise Refused(str(exc)) from None
    except (UnicodeDecodeError, ValueError):
        raise Refused(f"the {what} is not JSON") from None


def confusion_matrix_item(data: bytes, step: int | None) -> dict[str, Any]:
    """Comet's confusion-matrix JSON → a tallymark ``confusion_matrix`` item (named by its title)."""
    cm = _json_bytes(data, "confusion matrix")
    if not isinstance(cm, dict) or not isinstance(cm.get("matrix"), list):
        raise Refused("the confusion matrix has no 'matrix'")
    title = cm.get("title") or "Confusion Matrix"
    labels = cm.get("labels")
    if labels is not None:
        labels = [str(x) for x in labels]
    return {
        "kind": "confusion_matrix",
        "name": str(title),
        "step": step,
        "data": {"matrix": cm["matrix"], "labels": labels, "title": str(title)},
    }


def curve_item(data: bytes, file_name: str | None, step: int | None, overwrite: bool) -> dict[str, Any]:
    curve = _json_bytes(data, "curve")
    if not isinstance(curve, dict):
        raise Refused("the curve must be a JSON object with 'x' and 'y'")
    name = curve.get("name") or file_name or "curve"
    return {
        "kind": "curve",
        "name": str(name),
        "step": step,
        "data": {"x": curve.get("x"), "y": curve.get("y")},
        "overwrite": overwrite,
    }


def code_item(data: bytes, file_name: str | None) -> dict[str, Any]:
    source = data.decode("utf-8", "replace")
    path = file_name or "code"
    base = os.path.basename(path.replace("\\", "/")) or "code"
    kind = "notebook" if base.endswith(".ipynb") else "file"
    return {
        "kind": "code",
        "name": base,
        "data": {"file_name": base, "source": source, "kind": kind, "path": file_name},
    }


def _cell(text: str) -> Any:
    t = text.strip()
    if t and (t.lstrip("+-").isdigit()):
        try:
            return int(t)
        except ValueError:
            return text
    try:
        f = float(t)
    except ValueError:
        return text
    return f if math.isfinite(f) else text


def table_item(data: bytes, file_name: str) -> dict[str, Any] | None:
    """A CSV/TSV upload (Comet's ``log_table``) as a tallymark ``table`` item, when it parses as one."""
    lower = file_name.lower()
    if not (lower.endswith(".csv") or lower.endswith(".tsv")):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if lower.endswith(".tsv") else ","))
    rows = [r for r in rows if r]
    if not rows:
        return None
    header, body = rows[0], rows[1:]
    if any(len(r) != len(header) for r in body):
        return None
    return {
        "kind": "table",
        "name": file_name,
        "data": {"columns": header, "rows": [[_cell(c) for c in r] for r in body]},
    }


# ----- values out (Comet's read API) -----


def value_str(value: Any) -> str | None:
    """Comet's read API gives every parameter, metric and other value as a string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, default=str)


def comet_param_name(name: str, nested: bool) -> str:
    return name.replace(".", "|") if nested else name


def experiment_metadata(exp: Mapping[str, Any], file_path: str | None = None) -> dict[str, Any]:
    """A tallymark experiment dict → Comet's experiment metadata."""
    start = exp.get("created_at")
    end = exp.get("ended_at")
    running = exp.get("status") == "running"
    now = int(time.time() * 1000)
    return {
        "experimentKey": exp["key"],
        "experimentName": exp.get("name"),
        "optimizationId": None,
        "projectId": project_id(exp["workspace"], exp["project"]),
        "projectName": exp["project"],
        "workspaceName": exp["workspace"],
        "durationMillis": ((now if running or end is None else end) - start) if start else 0,
        "startTimeMillis": start,
        "endTimeMillis": end,
        "running": running,
        "archived": False,
        "throttle": False,
        "filePath": file_path,
        "fileName": os.path.basename(file_path) if file_path else None,
        "userName": exp.get("user"),
        "url": exp.get("url"),
    }


def metric_points(series: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A tallymark metric history (columns) → Comet's metric points, values as strings."""
    name = series["name"]
    out = []
    for i, (step, value, ts, epoch) in enumerate(
        zip(series["steps"], series["values"], series["timestamps"], series["epochs"], strict=True)
    ):
        out.append(
            {
                "metricName": name,
                "metricValue": value_str(value),
                "timestamp": ts,
                "step": step,
                "epoch": epoch,
                "runContext": None,
                "offset": i,
            }
        )
    return out


def summary_values(rows: Iterable[Mapping[str, Any]], nested: bool = False) -> list[dict[str, Any]]:
    """tallymark parameter/other summaries → Comet's ``{"values": [...]}`` entries."""
    out = []
    for r in rows:
        ts = r.get("timestampCurrent")
        cur = value_str(r.get("valueCurrent"))
        out.append(
            {
                "name": comet_param_name(r["name"], nested),
                "valueCurrent": cur,
                "valueMin": value_str(r["valueMin"]) if r.get("valueMin") is not None else cur,
                "valueMax": value_str(r["valueMax"]) if r.get("valueMax") is not None else cur,
                "timestampCurrent": ts,
                "timestampMin": ts,
                "timestampMax": ts,
                "editable": False,
            }
        )
    return out


def metric_summary_values(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        ts = r.get("timestampCurrent")
        out.append(
            {
                "name": r["name"],
                "valueCurrent": value_str(r.get("valueCurrent")),
                "valueMin": value_str(r.get("valueMin")),
                "valueMax": value_str(r.get("valueMax")),
                "timestampCurrent": ts,
                "timestampMin": ts,
                "timestampMax": ts,
                "stepCurrent": r.get("stepCurrent"),
                "stepMin": None,
                "stepMax": None,
                "epochCurrent": r.get("epochCurrent"),
                "count": r.get("count"),
                "editable": False,
            }
        )
    return out


def comet_metadata_out(meta: Any) -> str | None:
    """Metadata as Comet returns it: a JSON string (or None)."""
    if meta is None:
        return None
    return json.dumps(meta, separators=(",", ":"), default=str)


COMET_TYPE_KEY = "comet.type"
"""Asset metadata key that keeps a Comet asset type (image, text-sample, …) for ``get_asset_list``."""


def asset_out(a: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A tallymark asset → Comet's asset list entry."""
    meta = dict(a.get("metadata") or {})
    ctype = meta.pop(COMET_TYPE_KEY, None) or "asset"
    name = a["fileName"]
    image = ctype == "image"
    return {
        "fileName": name,
        "fileSize": a["fileSize"],
        "runContext": None,
        "step": a.get("step"),
        "link": None,
        "remote": False,
        "createdAt": a.get("createdAt"),
        "dir": ctype,
        "canView": image,
        "audio": ctype == "audio",
        "video": ctype == "video",
        "histogram": ctype == "histogram3d",
        "image": image,
        "type": ctype,
        "metadata": comet_metadata_out(meta or None),
        "assetId": str(a["assetId"]),
        "tags": [],
        "experimentKey": key,
        "curlDownload": None,
    }


def artifact_version_out(v: Mapping[str, Any]) -> dict[str, Any]:
    """A tallymark artifact version → Comet's artifact version details."""
    ws, name, version = v["workspace"], v["name"], v["version"]
    return {
        "artifact": {
            "artifactId": artifact_id(ws, name),
            "artifactName": name,
            "artifactType": v["artifactType"],
            "workspaceName": ws,
            "tags": [],
            "isPublic": False,
        },
        "artifactVersionId": artifact_version_id(ws, name, version),
        "artifactVersion": version,
        "alias": list(v.get("aliases") or []),
        "tags": list(v.get("versionTags") or []),
        "metadata": comet_metadata_out(v.get("metadata")),
        "sizeInBytes": v.get("size") or 0,
        "experimentKey": v.get("sourceExperimentKey"),
        "state": "CLOSED",
        "owner": v.get("createdBy"),
        "createdAt": v.get("createdAt"),
        "lastUpdated": v.get("createdAt"),
    }


def artifact_files_out(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    ws, name, version = v["workspace"], v["name"], v["version"]
    out = []
    for f in v.get("files") or []:
        remote = bool(f.get("remote"))
        out.append(
            {
                "fileName": f["logicalPath"],
                "fileSize": f.get("size") or 0,
                "link": f.get("uri") if remote else None,
                "remote": remote,
                "type": "asset",
                "assetId": artifact_file_id(ws, name, version, f["logicalPath"]),
                "artifactVersionId": artifact_version_id(ws, name, version),
                "metadata": comet_metadata_out(f.get("metadata")),
                "sha256": f.get("sha256"),
            }
        )
    return out


def model_version_out(workspace: str, model: str, v: Mapping[str, Any]) -> dict[str, Any]:
    """A tallymark registry version → Comet's registry model item."""
    return {
        "registryModelItemId": model_version_id(workspace, model, v["version"]),
        "registryModelId": model_id(workspace, model),
        "version": v["version"],
        "status": STATUS_TO_COMET.get(v["status"], v["status"]),
        "tags": list(v.get("tags") or []),
        "stages": list(v.get("tags") or []),
        "comment": v.get("description"),
        "experimentModel": {
            "experimentModelId": experiment_model_id(v["experimentKey"], v["experimentModel"]),
            "experimentModelName": v["experimentModel"],
            "experimentKey": v["experimentKey"],
        },
        "experimentKey": v["experimentKey"],
        "userName": v.get("createdBy"),
        "createdAt": v.get("createdAt"),
        "lastUpdated": (v.get("history") or [{}])[-1].get("at", v.get("createdAt")),
        "restApiUrl": None,
        "remoteUri": v.get("remoteUri"),
    }


def status_in(value: Any) -> str:
    """A Comet status name (any case) → tallymark's status."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in STATUS_TO_COMET:
            return s
    raise Refused(f"status {value!r} is not one of {', '.join(COMET_STATUSES)}")


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return (0,)
