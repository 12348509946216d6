"""Deployed model versions in the SDK: ``Model.deploy`` → :class:`Endpoint`.

>>> ep = API().get_model("risk-team", "fraud-xgb").deploy("@production")      # doctest: +SKIP
>>> scores = ep.predict(X_test)                  # numpy array, as booster.predict would give
>>> scores, row_ids = ep.predict(X_test[:5], return_ids=True)   # ids "REQUEST_ID:ROW"
>>> ep.log_ground_truth(row_ids, [0, 1, 0, 0, 1])
>>> ep.delete()

``deploy`` records the endpoint (status Creating), starts its process on this machine, detached
(:mod:`tallymark.serving.process`), and with ``wait=True`` returns once it answers ``/ping``
(status InService). A start that fails raises :class:`EndpointError` with the reason, leaves no
process behind and the row Failed with that reason.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

__all__ = ["Endpoint", "EndpointError", "ModelRef", "deploy"]


class EndpointError(Exception):
    """An endpoint could not start, or answered a prediction request with an error."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message, self.status, self.detail = message, status, detail


class ModelRef(NamedTuple):
    workspace: str
    name: str
    version: str


class Endpoint:
    """One deployed model version: ``name``, ``url``, ``model``, ``predict``, ``delete``."""

    def __init__(self, transport: Any, info: dict[str, Any]) -> None:
        self._t = transport
        self._info = info
        self._http: Any = None

    def __repr__(self) -> str:
        m = self.model
        return f"<Endpoint {self.name} {m.workspace}/{m.name}:{m.version} {self.status} {self.url or ''}>"

    @property
    def name(self) -> str:
        return str(self._info["name"])

    @property
    def workspace(self) -> str:
        return str(self._info["workspace"])

    @property
    def url(self) -> str | None:
        return self._info.get("url")

    @property
    def status(self) -> str:
        return str(self._info["status"])

    @property
    def model(self) -> ModelRef:
        m = self._info["model"]
        return ModelRef(m["workspace"], m["name"], m["version"])

    def describe(self) -> dict[str, Any]:
        """The endpoint's row as the store has it now, plus whether its process runs here."""
        from tallymark.serving import process

        self._info = self._t.call("get_endpoint", workspace=self.workspace, name=self.name)
        out = dict(self._info)
        here = out.get("config", {}).get("machine") == process.machine()
        out["processAlive"] = process.alive(out.get("pid")) if here else None
        return out

    def _client(self) -> Any:
        import httpx

        if self._http is None:
            if not self.url:
                raise EndpointError(f"endpoint {self.name!r} has no address (status {self.status})")
            self._http = httpx.Client(base_url=self.url, timeout=60.0)
        return self._http

    def predict(self, X: Any, return_ids: bool = False, batch_rows: int = 5000) -> Any:  # noqa: N803
        """Scores for the rows of ``X`` (DataFrame, numpy array, list of dicts or of lists), as
        ``booster.predict`` gives them. Sent ``batch_rows`` rows per request (so a test set stays
        under the endpoint's 10 MB body limit); with ``return_ids`` also each row's id."""
        import numpy as np

        columns, rows = _rows(X)
        scores: list[Any] = []
        ids: list[str] = []
        for start in range(0, max(len(rows), 1), batch_rows):
            chunk = rows[start : start + batch_rows]
            if columns == []:
                body: Any = chunk
            else:
                body = {"columns": columns, "data": chunk} if columns is not None else {"data": chunk}
            got, rid = self._post(body)
            scores.extend(got)
            ids.extend(f"{rid}:{i}" for i in range(len(got)))
        out = np.asarray(scores, dtype=np.float32)
        return (out, ids) if return_ids else out

    def _post(self, body: Any) -> tuple[list[Any], str]:
        resp = self._client().post(
            "/predict", content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                message, detail = err["message"], err.get("detail")
            except (ValueError, KeyError, TypeError):
                message, detail = resp.text[:500], None
            raise EndpointError(f"endpoint {self.name!r}: {message}", resp.status_code, detail)
        doc = resp.json()
        return doc["predictions"], doc["requestId"]

    def log_ground_truth(self, row_or_request_ids: Any, labels: Any) -> dict[str, int]:
        """Labels for logged predictions, by row id ("REQUEST_ID:ROW") or request id (row 0)."""
        from tallymark.sdk.predictions import log_ground_truth

        return log_ground_truth(self.workspace, self.name, row_or_request_ids, labels, transport=self._t)

    def read_predictions(self, since_ms: int | None = None, as_pandas: bool = False) -> Any:
        """The endpoint's prediction log as shipped so far (an Arrow table; see tallymark.sdk.predictions)."""
        from tallymark.sdk.predictions import read_predictions

        return read_predictions(self.workspace, self.name, since_ms, as_pandas=as_pandas, transport=self._t)

    def delete(self) -> None:
        """Mark the endpoint Deleted and stop its process if it runs on this machine."""
        from tallymark.serving import process

        info = self._t.call("delete_endpoint", workspace=self.workspace, name=self.name)
        self._info = info
        if self._http is not None:
            self._http.close()
            self._http = None
        if info.get("config", {}).get("machine") in (None, process.machine()):
            process.stop(info.get("pid"), self.name)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _rows(X: Any) -> tuple[list[str] | None, list[Any]]:  # noqa: N803
    """(column names — None: the schema's order, []: records — and the rows) of ``predict``'s X."""
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a pandas DataFrame
        return [str(c) for c in X.columns], X.to_numpy().tolist()
    if hasattr(X, "tolist") and hasattr(X, "ndim"):  # numpy
        data = X.tolist()
        return None, data if X.ndim == 2 else [data]
    if isinstance(X, list) and X and all(isinstance(r, dict) for r in X):
        return [], list(X)  # records, sent as they are: the endpoint checks each one's columns
    if isinstance(X, list):
        return None, [list(r) for r in X]
    raise TypeError(f"cannot send {type(X).__name__} to an endpoint: use a DataFrame, an array or a list")


def deploy(
    transport: Any,
    workspace: str,
    model: str,
    version_or_alias: str,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    wait: bool = True,
    timeout: float = 60.0,
) -> Endpoint:
    """Record an endpoint for the version and start its process here (see the module)."""
    from tallymark.sdk.transport import TallymarkError, Unavailable
    from tallymark.serving import model as model_mod
    from tallymark.serving import process

    body: dict[str, Any] = {"model": model, "version": str(version_or_alias), "host": host, "port": port}
    if name is not None:
        body["name"] = name
    try:
        info = transport.call("create_endpoint", workspace=workspace, body=body)
    except TallymarkError as exc:
        raise EndpointError(exc.message, exc.status, exc.detail) from None
    ep_name = info["name"]
    m = info["model"]

    def failed(reason: str) -> EndpointError:
        try:  # the process reports its own failures only when nobody waits for it
            transport.call(
                "endpoint_status",
                workspace=workspace,
                name=ep_name,
                body={"status": "Failed", "failure_reason": reason[:10_000]},
            )
        except (TallymarkError, Unavailable):
            pass
        return EndpointError(f"endpoint {ep_name!r} failed to start: {reason}")

    # Fetched and sha256-checked here, where the store is open already: the endpoint process then
    # answers without opening one first (it checks the file's sha256 again when it loads it).
    try:
        prep = model_mod.prepare(
            transport,
            m["workspace"],
            m["name"],
            m["version"],
            process.endpoint_dir(transport.client, ep_name) / "model",
            m.get("trustedBy"),
        )
    except model_mod.LoadError as exc:
        raise failed(str(exc)) from None
    started = process.spawn(
        transport.client, workspace, ep_name, host, port, launch=prep, starter_reports=wait
    )
    if not wait:
        return Endpoint(transport, info)
    try:
        where = process.wait_ready(started, timeout=timeout)
    except process.EndpointStartError as exc:
        raise failed(str(exc)) from None
    try:
        transport.call(
            "endpoint_status", workspace=workspace, name=ep_name, body={"status": "InService", **where}
        )
    except TallymarkError as exc:  # deleted meanwhile, say: the process sees the row and exits
        process.stop(where.get("pid"), ep_name, force_own=True)
        raise EndpointError(f"endpoint {ep_name!r}: {exc.message}", exc.status) from None
    info = transport.call("get_endpoint", workspace=workspace, name=ep_name)
    return Endpoint(transport, info)
