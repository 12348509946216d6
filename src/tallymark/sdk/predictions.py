"""Ground truth and reading back an endpoint's prediction log, through any SDK transport.

``Endpoint.log_ground_truth`` and ``Endpoint``'s read side call these; they work the same on the
embedded home and on a server (``read_predictions`` is Arrow on both, not JSON).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["BATCH", "log_ground_truth", "read_predictions"]

BATCH = 100_000  # the store's limit per call


def _transport(transport: Any) -> Any:
    if transport is not None:
        return transport
    from tallymark.sdk.transport import default_transport

    return default_transport()


def _scalar(v: Any) -> Any:
    """A plain JSON scalar of a label (numpy and pandas scalars included)."""
    item = getattr(v, "item", None)
    if item is not None and not isinstance(v, (str, bytes)):
        v = item()
    if isinstance(v, float) and v != v:  # NaN: no label
        return None
    return v


def log_ground_truth(
    workspace: str,
    endpoint: str,
    row_or_request_ids: Iterable[Any] | str,
    labels: Iterable[Any] | Any,
    *,
    transport: Any = None,
) -> dict[str, int]:
    """Join labels to logged predictions by row id ("REQUEST_ID:ROW"; a bare request id is row 0).

    Sent in calls of at most :data:`BATCH` labels; a label sent again for a row replaces the old
    one. A single id may be given with a single label."""
    ids = (
        [row_or_request_ids] if isinstance(row_or_request_ids, str) else [str(i) for i in row_or_request_ids]
    )
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
        labels = [labels]
    labs = [_scalar(v) for v in labels]
    if len(ids) != len(labs):
        raise ValueError(f"{len(ids)} ids but {len(labs)} labels; give one label per id")
    t = _transport(transport)
    done = 0
    for i in range(0, len(ids), BATCH):
        out = t.call(
            "log_ground_truth",
            workspace=workspace,
            name=endpoint,
            ids=ids[i : i + BATCH],
            labels=labs[i : i + BATCH],
        )
        done += int(out["labeled"])
    return {"labeled": done}


def read_predictions(
    workspace: str,
    endpoint: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
    with_labels: bool = True,
    *,
    as_pandas: bool = False,
    transport: Any = None,
) -> Any:
    """The endpoint's logged predictions (``since_ms <= at < until_ms``), ordered by time: a
    pyarrow Table with request_id, row, at, latency_us, the input columns, the outputs and, with
    ``with_labels``, ``label`` and ``label_at`` (null where no label arrived); a pandas DataFrame
    with ``as_pandas``."""
    table = _transport(transport).call(
        "read_predictions",
        workspace=workspace,
        name=endpoint,
        since_ms=since_ms,
        until_ms=until_ms,
        with_labels=with_labels,
    )
    return table.to_pandas() if as_pandas else table
