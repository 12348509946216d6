"""The metadata schema (SQLAlchemy Core). Every change here needs an Alembic migration.

A snapshot test (tests/test_migrations.py) compares these tables with a freshly migrated database,
so a change without a migration fails CI.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Timestamps are integer milliseconds since the Unix epoch (UTC) everywhere.

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(500), nullable=True),
    Column("status", String(16), nullable=False),  # running | ended
    Column("user", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
    Index("ix_experiments_project_created", "project_id", "created_at"),
)

# Parameters: the current value (JSON text, see tallymark.jsonvalue) plus typed copies the query
# language compares against: value_num for finite numbers, value_text for strings.
params = Table(
    "params",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("value_json", Text, nullable=False),
    Column("value_num", Float(precision=53), nullable=True),
    Column("value_text", Text, nullable=True),
    Column("min_json", Text, nullable=True),
    Column("max_json", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_params_name_num", "name", "value_num"),
)

others = Table(
    "others",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("value_json", Text, nullable=False),
    Column("value_num", Float(precision=53), nullable=True),
    Column("value_text", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True),
    Column("tag", String(500), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_tags_tag", "tag"),
)

# Metric points are stored as columns: each row of metric_chunks holds up to N points of one
# (experiment, metric) as little-endian typed arrays. See tallymark.store.chunks.
metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("step_min", BigInteger, nullable=False),
    Column("step_max", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),  # int64
    Column("epochs", LargeBinary, nullable=True),  # int64, INT64_MIN = no epoch; NULL = none at all
    Column("timestamps", LargeBinary, nullable=False),  # int64 ms
    Column("values", LargeBinary, nullable=False),  # float64
    Column("int_values", LargeBinary, nullable=True),  # int64, only where a value was an int
    Column("int_mask", LargeBinary, nullable=True),  # uint8 per point: 1 = take int_values
    UniqueConstraint("experiment_id", "name", "seq"),
)

# One row per (experiment, metric): what tables, sorting and the query language read.
# Float columns hold NULL where the value is NaN (SQLite cannot store NaN); *_json keeps it exact.
metric_summaries = Table(
    "metric_summaries",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_value", Float(precision=53), nullable=True),
    Column("last_json", Text, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("last_epoch", BigInteger, nullable=True),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("min_value", Float(precision=53), nullable=True),
    Column("min_json", Text, nullable=True),
    Column("max_value", Float(precision=53), nullable=True),
    Column("max_json", Text, nullable=True),
    Column("chunks", Integer, nullable=False),
    Index("ix_metric_summaries_name_last", "name", "last_value"),
)

# Client batch ids already applied: a retried batch is acknowledged and ignored.
batches = Table(
    "batches",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id"), primary_key=True),
    Column("batch_id", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

# Structured things logged to an experiment that are not metrics or files: confusion matrices,
# curves, tables, code, environment, packages, git, command line, stdout chunks.
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(500), nullable=False),
    Column("step", BigInteger, nullable=True),
    Column("data_json", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_items_experiment_kind", "experiment_id", "kind", "name"),
)

# Files logged to an experiment; the bytes live in the content-addressed blob store.
assets = Table(
    "assets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("file_name", String(1000), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(200), nullable=True),
    Column("step", BigInteger, nullable=True),
    Column("metadata_json", Text, nullable=True),
    Column("upload_id", String(64), nullable=True),  # client idempotency id: a retried upload is one asset
    Column("created_at", BigInteger, nullable=False),
    Index("ix_assets_experiment", "experiment_id"),
    UniqueConstraint("experiment_id", "upload_id"),
    Index("ix_assets_sha256", "sha256"),
)
