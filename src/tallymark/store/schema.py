"""The metadata schema (SQLAlchemy Core). Every change here needs an Alembic migration.

A snapshot test (tests/test_migrations.py) compares these tables with a freshly migrated database,
so a change without a migration fails CI.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    # An offline archive being replayed (Comet's `comet upload`): the SHA-256 of the import session's
    # token, and until when (ms) that session may still add what it was uploading after the archive's
    # end arrived. See tallymark.service.experiments (import sessions).
    Column("import_token", String(64), nullable=True),
    Column("import_until", BigInteger, nullable=True),
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

# ---------------------------------------------------------------------------------------------
# Artifacts, lineage, models and the registry (migration 0002).

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("artifact_type", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), nullable=False),
    Column("version", String(100), nullable=False),
    Column("major", BigInteger, nullable=False),
    Column("minor", BigInteger, nullable=False),
    Column("patch", BigInteger, nullable=False),
    Column("metadata_json", Text, nullable=True),
    Column("tags_json", Text, nullable=True),
    Column("source_experiment_id", Integer, ForeignKey("experiments.id"), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    # When the version's files became final (see docs/artifacts.md, "What cannot change"): at
    # creation for a version logged whole, else when Comet's upload says CLOSED or the producing
    # experiment ends or is reopened. A closed version's files and metadata never change.
    Column("closed_at", BigInteger, nullable=True),
    UniqueConstraint("artifact_id", "version"),
)

artifact_aliases = Table(
    "artifact_aliases",
    metadata,
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version_id", Integer, ForeignKey("artifact_versions.id"), nullable=False),
)

# Files of artifact versions and of logged models: a local file (sha256 in the blob store) or a
# remote reference (uri only).
files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_kind", String(20), nullable=False),  # artifact_version | model
    Column("owner_id", Integer, nullable=False),
    Column("logical_path", String(1000), nullable=False),
    Column("sha256", String(64), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("uri", Text, nullable=True),
    Column("metadata_json", Text, nullable=True),
    UniqueConstraint("owner_kind", "owner_id", "logical_path"),
    Index("ix_files_sha256", "sha256"),
)

experiment_models = Table(
    "experiment_models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("remote_uri", Text, nullable=True),
    Column("metadata_json", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("experiment_id", "name"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("registered_model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", String(100), nullable=False),
    Column("major", BigInteger, nullable=False),
    Column("minor", BigInteger, nullable=False),
    Column("patch", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags_json", Text, nullable=True),
    Column("experiment_model_id", Integer, ForeignKey("experiment_models.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("registered_model_id", "version"),
)

status_requests = Table(
    "status_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("to_status", String(20), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("comment", Text, nullable=True),
    Column("state", String(20), nullable=False),  # pending | approved | rejected
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("decision_comment", Text, nullable=True),
)

# Every status change of a model version, kept forever: who, when, why.
model_transitions = Table(
    "model_transitions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("comment", Text, nullable=True),
    Column("request_id", Integer, ForeignKey("status_requests.id"), nullable=True),
)

# Lineage: data flows from src to dst. experiment -produced-> artifact_version,
# artifact_version -consumed-> experiment, experiment -registered_from-> model_version.
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("src_kind", String(20), nullable=False),
    Column("src_id", Integer, nullable=False),
    Column("dst_kind", String(20), nullable=False),
    Column("dst_id", Integer, nullable=False),
    Column("relation", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
    Index("ix_lineage_edges_dst", "dst_kind", "dst_id"),
)

# ---------------------------------------------------------------------------------------------
# Governance: users, workspace memberships and API keys (migration 0005). See docs/security.md.

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=True),
    Column("is_admin", Boolean, nullable=False),  # a server admin: manages users and workspaces
    Column("disabled_at", BigInteger, nullable=True),  # set: none of the user's keys authenticates
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
)

# A user's role in one workspace: admin | member | viewer, plus the four-eyes approver flag.
memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("approver", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index("ix_memberships_workspace", "workspace_id"),
)

# API keys are stored as the SHA-256 of the whole key only (see tallymark.service.apikeys); the
# prefix (its first characters) is kept so a list can tell keys apart without revealing them.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_api_keys_user", "user_id"),
)

# The audit log (migration 0006): one hash-chained row per write, appended in the write's own
# transaction, and signed checkpoints of the chain. tallymark.service.audit is the specification.

audit_log = Table(
    "audit_log",
    metadata,
    # 1, 2, 3 … with no gap, assigned under the chain's lock (see tallymark.service.audit.append).
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("object_kind", String(40), nullable=False),
    Column("object_ref", String(1000), nullable=False),
    Column("workspace", String(200), nullable=True),
    Column("request_id", String(200), nullable=True),
    Column("payload_sha256", String(64), nullable=False),
    # Unique: two entries naming the same predecessor would be a fork of the chain.
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_actor", "actor"),
    Index("ix_audit_log_object_ref", "object_ref"),
    Index("ix_audit_log_time", "time"),
)

# Signed statements "this log had SIZE entries and its last hash was HEAD" (C2SP signed notes).
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_audit_checkpoints_size", "size"),
)

# UI sessions and pre-signed login links (migration 0007). tallymark.service.sessions and
# tallymark.service.presign are the specification.

# A session cookie is stored only as its SHA-256, like an API key.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("method", String(20), nullable=False),  # key | link: how the user logged in
    Column("key_id", Integer, nullable=True),  # the API key of a key login
    Column("link_id", String(32), nullable=True),  # the login link of a link login
    Index("ix_sessions_user", "user_id"),
)

# Every issued login link; used_at makes it single use (set by a conditional UPDATE).
login_links = Table(
    "login_links",
    metadata,
    Column("id", String(32), primary_key=True),  # 32 hex: the random link id signed into the token
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("workspace", String(200), nullable=True),
    Column("path", String(2000), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("issued_by", String(200), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("session_ms", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

# ---------------------------------------------------------------------------------------------
# Jobs and endpoints (migration 0008). See docs/jobs.md and docs/serving.md.

# A processing or training job: one row per job, kept forever. spec_json is the job as submitted
# (script or algorithm, hyperparameters, inputs/outputs/channels, arguments, limits, backend);
# attempts_json the list of attempts (attempt, started_at, ended_at, status, exit_code,
# failure_reason, host) when retries were asked for.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # processing | training
    Column("status", String(20), nullable=False),  # InProgress | Completed | Failed | Stopped | TimedOut
    Column("secondary_status", String(40), nullable=True),  # Starting | Downloading | Training | Uploading …
    Column("backend", String(300), nullable=False),  # local | dask://host:port
    Column("spec_json", Text, nullable=False),
    Column("resources_json", Text, nullable=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=True),  # log_training_job
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("model_data", String(2000), nullable=True),
    Column("attempt", Integer, nullable=False, default=1),
    Column("max_attempts", Integer, nullable=False, default=1),
    Column("attempts_json", Text, nullable=True),
    Column("stop_requested_at", BigInteger, nullable=True),
    Column("host", String(300), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("log_bytes", BigInteger, nullable=False, default=0),
    Column("log_dropped", BigInteger, nullable=False, default=0),
    Index("ix_jobs_workspace_created", "workspace_id", "created_at"),
)

# A job's output as it came (stdout and stderr interleaved, bytes as the script wrote them), in
# chunks appended in order; seq makes a resent chunk a no-op.
job_logs = Table(
    "job_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("job_id", "seq"),
)

# An endpoint: one process serving one registered model version (docs/serving.md).
endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("workspace_id", Integer, ForeignKey("workspaces.id"), nullable=False),
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("status", String(20), nullable=False),  # Creating | InService | Failed | Deleted
    Column("url", String(300), nullable=True),
    Column("host", String(300), nullable=True),
    Column("port", Integer, nullable=True),
    Column("pid", Integer, nullable=True),
    Column("config_json", Text, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
)

# The prediction log, columnar: each chunk is an Arrow IPC stream of rows (request_id, row, at,
# latency_us, the input columns, the outputs) shipped by the endpoint from its spool; (endpoint,
# spool_id, seq) makes a chunk shipped twice (after a crash) a no-op.
prediction_chunks = Table(
    "prediction_chunks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint_id", Integer, ForeignKey("endpoints.id"), nullable=False),
    Column("spool_id", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("first_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("endpoint_id", "spool_id", "seq"),
    Index("ix_prediction_chunks_endpoint_at", "endpoint_id", "first_at"),
)

# Labels that arrived later for logged predictions, by row id ("REQUEST_ID:ROW"); the last one wins.
ground_truth = Table(
    "ground_truth",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint_id", Integer, ForeignKey("endpoints.id"), nullable=False),
    Column("row_id", String(100), nullable=False),
    Column("label_json", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    UniqueConstraint("endpoint_id", "row_id"),
)

# Versions an admin allowed to be loaded from a format that unpickles (docs/serving.md).
trusted_model_versions = Table(
    "trusted_model_versions",
    metadata,
    Column("model_version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("trusted_by", String(200), nullable=False),
    Column("trusted_at", BigInteger, nullable=False),
    Column("comment", Text, nullable=True),
)
