"""The endpoint's routes: three dialects over one loaded model, on one port.

- MLflow scoring: ``POST /invocations`` (``dataframe_split``, ``dataframe_records``, ``instances``,
  ``inputs`` or ``text/csv``) → ``{"predictions": [...]}``; ``GET /ping``, ``/health``, ``/version``.
- Open Inference Protocol (KServe V2): ``GET /v2/health/live|ready``, ``GET /v2``,
  ``GET /v2/models/{name}[/versions/{v}][/ready]`` (metadata with inputs/outputs),
  ``POST /v2/models/{name}[/versions/{v}]/infer``. ``{name}`` is the registered model's name or
  the endpoint's; a version other than the one served is 404.
- ``POST /predict``: ``{"columns": [...], "data": [[...]]}`` or a list of records.

Every dialect reaches the same :func:`tallymark.serving.inputs` checks and the same
``Loaded.predict``, so the numbers are the same everywhere. Errors use the dialect's own shape
(MLflow ``{"error_code", "message"}``, V2 ``{"error": "…"}``, ours ``{"error": {"code",
"message", "detail"}}``), always with a message naming what is wrong, and every response carries
``X-Request-Id`` (the client's when it sent a valid one: ≤ 64 characters of ``[A-Za-z0-9._-]``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import numpy as np

from tallymark.serving import inputs
from tallymark.serving.http import Request, Response
from tallymark.serving.inputs import BadInput
from tallymark.serving.model import Loaded

__all__ = ["MAX_BODY", "EndpointApp", "plain_error"]

MAX_BODY = 10 * 1024 * 1024
_RID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    431: "too_large",
    500: "internal",
    501: "not_implemented",
    505: "bad_request",
}
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def plain_error(status: int, message: str, detail: Any = None) -> Response:
    """Our error shape, for routes that have no dialect (and for malformed HTTP)."""
    body = {"error": {"code": _CODES.get(status, "error"), "message": message, "detail": detail}}
    return Response(status, _dumps(body))


class EndpointApp:
    """``app(request) -> response`` for :func:`tallymark.serving.http.serve`."""

    def __init__(self, model: Loaded, endpoint: str, predlog: Any = None, version: str = "") -> None:
        self.model = model
        self.endpoint = endpoint
        self.predlog = predlog
        self.tallymark_version = version
        self.names = {model.name, endpoint}
        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._metadata = _dumps(self._v2_metadata())

    # request ids: the client's (validated) or ours (unique per process: a random prefix + counter)
    def _request_id(self, req: Request) -> str | None:
        rid = req.headers.get("x-request-id")
        if rid is None:
            return self._new_id()
        return rid if _RID.fullmatch(rid) else None

    def _new_id(self) -> str:
        self._count += 1
        return f"{self._prefix}-{self._count:x}"

    def __call__(self, req: Request) -> Response:
        rid = self._request_id(req)
        if rid is None:
            resp = plain_error(
                400, "X-Request-Id must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
            )
            resp.headers.append(("X-Request-Id", self._new_id()))
            return resp
        resp = self._route(req, rid)
        resp.headers.append(("X-Request-Id", rid))
        return resp

    def _route(self, req: Request, rid: str) -> Response:
        path, method = req.path.rstrip("/") or "/", req.method
        if path == "/invocations":
            return self._post(req, rid, "mlflow") if method == "POST" else self._405("POST")
        if path == "/predict":
            return self._post(req, rid, "predict") if method == "POST" else self._405("POST")
        if path in ("/ping", "/health"):
            return Response(200, b"\n", "text/plain") if method in ("GET", "HEAD") else self._405("GET")
        if path == "/version":
            return Response(200, self.tallymark_version.encode() + b"\n", "text/plain")
        if path == "/":
            return Response(200, _dumps({"endpoint": self.endpoint, "model": self.model.describe()}))
        if path.startswith("/v2"):
            return self._v2(req, rid, path, method)
        return plain_error(404, f"no route {path[:200]!r} on this endpoint")

    def _405(self, allowed: str) -> Response:
        resp = plain_error(405, f"this route takes {allowed}")
        resp.headers.append(("Allow", allowed))
        return resp

    def _v2(self, req: Request, rid: str, path: str, method: str) -> Response:
        if path in ("/v2/health/live", "/v2/health/ready"):
            key = path.rsplit("/", 1)[1]
            return Response(200, _dumps({key: True}))
        if path == "/v2":
            return Response(
                200, _dumps({"name": "tallymark", "version": self.tallymark_version, "extensions": []})
            )
        parts = path.split("/")[3:]  # after /v2/models
        if not path.startswith("/v2/models/") or not parts or not parts[0]:
            return _v2_error(404, f"no route {path[:200]!r}")
        name, rest = parts[0], parts[1:]
        if name not in self.names:
            return _v2_error(404, f"no model {name[:100]!r} here: this endpoint serves {self.model.name!r}")
        if len(rest) >= 2 and rest[0] == "versions":
            if rest[1] != self.model.version:
                return _v2_error(
                    404,
                    f"model {self.model.name!r} has no version {rest[1][:50]!r} here "
                    f"(serving {self.model.version})",
                )
            rest = rest[2:]
        if not rest:
            return Response(200, self._metadata) if method == "GET" else self._405("GET")
        if rest == ["ready"]:
            return Response(200, _dumps({"name": self.model.name, "ready": True}))
        if rest == ["infer"]:
            return self._post(req, rid, "v2") if method == "POST" else self._405("POST")
        return _v2_error(404, f"no route {path[:200]!r}")

    def _v2_metadata(self) -> dict[str, Any]:
        m = self.model
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": f"xgboost_{m.model_file.format}",
            "inputs": [
                {"name": c.name, "datatype": inputs.V2_TYPES[c.type], "shape": [-1]} for c in m.schema.columns
            ],
            "outputs": [{"name": m.output_name, "datatype": "FP32", "shape": [-1]}],
        }

    def _post(self, req: Request, rid: str, dialect: str) -> Response:
        t0 = time.perf_counter_ns()
        at_ms = time.time_ns() // 1_000_000
        schema = self.model.schema
        v2_id: Any = None
        try:
            ctype = req.headers.get("content-type", "")
            if dialect == "mlflow":
                x = inputs.mlflow_request(ctype, req.body, schema)
            elif dialect == "predict":
                x = inputs.predict_request(ctype, req.body, schema)
            else:
                x, v2_id = inputs.v2_request(req.body, schema)
        except BadInput as exc:
            return _dialect_error(dialect, exc.status, exc.message, exc.detail)
        y = self.model.predict(x)
        latency_us = (time.perf_counter_ns() - t0) // 1000
        if self.predlog is not None:
            self.predlog.record(rid, at_ms, latency_us, x, y)
        preds = y.tolist()
        if dialect == "mlflow":
            return Response(200, _dumps({"predictions": preds}))
        if dialect == "predict":
            body = {
                "predictions": preds,
                "requestId": rid,
                "model": {
                    "workspace": self.model.workspace,
                    "name": self.model.name,
                    "version": self.model.version,
                },
            }
            return Response(200, _dumps(body))
        out = {
            "model_name": self.model.name,
            "model_version": self.model.version,
            "id": v2_id if isinstance(v2_id, str) else rid,
            "outputs": [
                {
                    "name": self.model.output_name,
                    "datatype": "FP32",
                    "shape": list(np.shape(y)),
                    "data": y.ravel().tolist() if y.ndim > 1 else preds,
                }
            ],
        }
        return Response(200, _dumps(out))


def _v2_error(status: int, message: str, detail: Any = None) -> Response:
    return Response(status, _dumps({"error": message, "detail": detail}))


def _dialect_error(dialect: str, status: int, message: str, detail: Any) -> Response:
    if dialect == "mlflow":
        code = _MLFLOW_CODES.get(status, "BAD_REQUEST")
        return Response(status, _dumps({"error_code": code, "message": message, "detail": detail}))
    if dialect == "v2":
        return _v2_error(status, message, detail)
    return plain_error(status, message, detail)
