"""The model registry in the SDK: ``Model`` (versions, statuses, four-eyes approvals, downloads).

>>> m = API().get_model("risk-team", "fraud-xgb")                       # doctest: +SKIP
>>> req = m.request_status("2.0.0", "production", comment="beats 1.0.0 on AUC-PR")  # doctest: +SKIP
>>> # another person (another TALLYMARK_USER / API key):
>>> m.approve(req["id"], comment="reviewed")                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Model:
    def __init__(self, transport: Any, workspace: str, name: str) -> None:
        self._t = transport
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        return f"<Model {self.workspace}/{self.name}>"

    def _kw(self, **kw: Any) -> dict[str, Any]:
        return {"workspace": self.workspace, "name": self.name, **kw}

    def details(self) -> dict[str, Any]:
        return self._t.call("get_model", **self._kw())

    def find_versions(self, status: str | None = None, tag: str | None = None) -> list[str]:
        """Version numbers, oldest first, optionally only those with a status and/or tag."""
        return [
            v["version"]
            for v in self.details()["versions"]
            if (status is None or v["status"] == status) and (tag is None or tag in v["tags"])
        ]

    def get_details(self, version: str) -> dict[str, Any]:
        """Status, tags, source experiment, files and the full status history of a version."""
        return self._t.call("model_version", **self._kw(version=version))

    def get_training_inputs(self, version: str) -> list[dict[str, Any]]:
        """The artifact versions (with file sha256) upstream of this version: what trained it."""
        return self._t.call("training_inputs", **self._kw(version=version))

    def set_status(self, version: str, status: str, comment: str | None = None) -> dict[str, Any]:
        """Change status directly; production is refused here: use :meth:`request_status`."""
        return self._t.call(
            "set_status", **self._kw(version=version, body={"status": status, "comment": comment})
        )

    def request_status(self, version: str, status: str, comment: str | None = None) -> dict[str, Any]:
        """Ask for a status change. Production waits for a different person's :meth:`approve`."""
        return self._t.call(
            "request_status", **self._kw(version=version, body={"status": status, "comment": comment})
        )

    def approve(self, request_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._t.call("decide", request_id=request_id, approve=True, body={"comment": comment})

    def reject(self, request_id: int, comment: str | None = None) -> dict[str, Any]:
        return self._t.call("decide", request_id=request_id, approve=False, body={"comment": comment})

    def get_requests(self, state: str | None = None) -> list[dict[str, Any]]:
        return self._t.call("list_requests", **self._kw(state=state))

    def add_tag(self, version: str, tag: str) -> dict[str, Any]:
        return self._t.call("add_model_tag", **self._kw(version=version, tag=tag))

    def download(self, version: str, path: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
        """Download a version's files (sha256-verified) into ``path``."""
        from tallymark.sdk.artifact import LoggedArtifact

        d = self.get_details(version)
        shim = {
            "workspace": self.workspace,
            "name": self.name,
            "version": version,
            "aliases": [],
            "artifactType": "model",
            "metadata": d["metadata"],
            "versionTags": d["tags"],
            "files": d["files"],
            "sourceExperimentKey": d["experimentKey"],
            "size": sum(f["size"] or 0 for f in d["files"]),
        }
        files = LoggedArtifact(self._t, shim)
        files.owner_kind = "model"  # its bytes are read through the model version
        return files.download(path, overwrite=overwrite)

    # -- serving (docs/serving.md) ---------------------------------------------------------------
    def deploy(
        self,
        version_or_alias: str,
        *,
        name: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        wait: bool = True,
    ) -> Any:
        """Serve a version (or ``@production``/``@staging``: the newest with that status) from a
        process on this machine; returns an :class:`~tallymark.sdk.endpoint.Endpoint` that answers."""
        from tallymark.sdk.endpoint import deploy

        return deploy(
            self._t, self.workspace, self.name, version_or_alias, name=name, port=port, host=host, wait=wait
        )

    def trust(self, version: str, comment: str) -> dict[str, Any]:
        """Allow a version stored as a pickle to be served (workspace admins; audited). Loading it
        runs code from the file: trust only a file whose origin you know."""
        return self._t.call("trust_model", **self._kw(version=version, body={"comment": comment}))
