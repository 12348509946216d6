"""Settings: declared once, each with its default, limit and help; passed explicitly, never global.

``Settings.from_env()`` is the only place that reads the environment (``TALLYMARK_HOME``,
``TALLYMARK_URL``…); servers, the embedded store and tests build a ``Settings`` and hand it over.
tests/test_settings.py fails when a setting is missing from docs/settings.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def _setting(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best here
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path("~/.tallymark"), "Embedded home: tallymark.db and blobs/ live here.")
    db_url: str | None = _setting(None, "Metadata database URL; default sqlite:///HOME/tallymark.db.")
    blobs: str | None = _setting(None, "Blob store: a folder or s3://bucket/prefix; default HOME/blobs.")
    s3_endpoint_url: str | None = _setting(None, "Endpoint of an S3-compatible server for s3:// blobs.")
    panels_dir: str | None = _setting(None, "Extra folder of custom UI panel files (besides HOME/panels).")
    public_url: str = _setting("http://127.0.0.1:5118", "Base URL of the UI, used in experiment URLs.")
    loopback_only: bool = _setting(
        True, "Answer only requests addressed to localhost, a loopback IP or public_url's host (421)."
    )
    max_body_bytes: int = _setting(64 * MiB, "Largest JSON request body, after decompression (413).")
    max_asset_bytes: int = _setting(20 * 1024 * MiB, "Largest single asset upload (413).")
    max_value_bytes: int = _setting(1 * MiB, "Largest encoded parameter/other value or tag (422).")
    max_item_bytes: int = _setting(16 * MiB, "Largest structured item: table, code, matrix (422).")
    max_points_per_batch: int = _setting(5_000_000, "Most metric points in one batch (422).")
    chunk_points: int = _setting(16_384, "Metric points per stored chunk before a new one starts.")

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):  # accept str paths too
            object.__setattr__(self, "home", Path(self.home))

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        base = cls(
            home=Path(env.get("TALLYMARK_HOME", "~/.tallymark")),
            public_url=env.get("TALLYMARK_PUBLIC_URL", cls.public_url),
            db_url=env.get("TALLYMARK_DB") or None,
            blobs=env.get("TALLYMARK_BLOBS") or None,
            s3_endpoint_url=env.get("TALLYMARK_S3_ENDPOINT_URL") or None,
            panels_dir=env.get("TALLYMARK_PANELS_DIR") or None,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def home_path(self) -> Path:
        return self.home.expanduser()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home_path / 'tallymark.db'}"

    @property
    def blobs_url(self) -> str:
        return self.blobs or str(self.home_path / "blobs")


def documented() -> dict[str, str]:
    """Every setting with its help text (used by docs and their test)."""
    return {f.name: f.metadata["help"] for f in fields(Settings)}
