"""The Store: the database, the blob store and the settings one service call needs.

Building a Store has no side effects; :func:`open_store` creates the home folder and brings the
schema up to date (the server and the embedded home call it on start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tallymark.settings import Settings
from tallymark.store import migrate
from tallymark.store.blobfactory import BlobStore, open_blob_store
from tallymark.store.db import Database


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Store:
    settings: Settings
    db: Database
    blobs: BlobStore

    def close(self) -> None:
        self.db.dispose()


def open_store(settings: Settings, upgrade: bool = True) -> Store:
    """Open (and by default migrate) the store the settings describe."""
    db = Database(settings.database_url)
    if db.dialect == "sqlite" and db.read_only is None:
        settings.home_path.mkdir(parents=True, exist_ok=True)
    try:
        if db.read_only is not None:  # opened for reading only: nothing to migrate with, say so
            migrate.check(db.engine)
        elif upgrade:
            migrate.upgrade(db.engine)
        else:
            migrate.check(db.engine)
    except BaseException:
        db.dispose()
        raise
    try:
        blobs = open_blob_store(settings.blobs_url, settings.s3_endpoint_url)
        if db.read_only is None:  # a read-only home is opened for reading: its blobs are not written
            blobs.check()  # a wrong bucket or credentials fail now, not at the first upload
    except BaseException:
        db.dispose()
        raise
    return Store(settings=settings, db=db, blobs=blobs)
