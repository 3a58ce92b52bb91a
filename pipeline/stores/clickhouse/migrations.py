"""ClickHouse schema migrations: numbered files that never change once released, and a ledger.

The scheme
    ``schemas/clickhouse/migrations/NNNN_name.sql`` holds ``;``-separated statements with ``{db}`` for
    the database. 0001 is the first released schema (ScoredPost v1); each later file moves the schema
    one step (ALTER ... ADD COLUMN, new tables and views). A fresh database runs them all, in order, so
    there is one source of truth and no separate "current" DDL to drift from it. A released file is
    never edited: a change is a new file with the next number.

The ledger
    ``{db}.schema_migrations(version, name, checksum, applied_at)`` gets one row per migration, written
    after its last statement succeeded. The checksum is the SHA-256 of the file as shipped; a file whose
    checksum differs from the ledger's is refused (``MigrationError``), so an edited release is caught
    instead of silently diverging between databases. A ledger version this code does not know (a newer
    release ran) is logged and left alone, so an older worker restarting mid-rollout keeps running.

Resumable statements
    ClickHouse (18.16 included) has no transactions, so a migration cut off half-way is resumed, not
    rolled back: every CREATE says IF NOT EXISTS, and since 18.16 has no ADD COLUMN IF NOT EXISTS, each
    ``ALTER TABLE {db}.t ADD COLUMN c ...`` holds one column and is skipped when ``c`` is already there.
    The same rule adopts a database created before the ledger existed: its statements all turn into
    no-ops and the ledger is filled in. Likewise ``RENAME TABLE {db}.a TO {db}.b`` renames one table
    and is skipped when ``b`` is already there (the rename is done). Both checks read the database as
    it was when the migration started, so a migration should not rename to a name it creates itself.

The lock
    Workers migrate on their first flush or read, so several may start at once. A server has no
    transactions nor server-side locks in 18.16, so they take a Redis lock (redis-py's ``Lock``: SET NX
    PX with a random token, released only by its owner) named per database; the ledger is read again
    under it, so the second worker finds nothing left to do. The lock lives ``LOCK_TTL_S`` and a thread
    renews it while its holder runs, so a holder that was killed frees it within seconds, however long
    a live migration takes. Should it lapse anyway (Redis unreachable), the resumable statements keep
    the schema right. chDB data belongs to one process, so a process-wide lock per database is enough
    there and Redis is not needed. When nothing is pending (the ledger matches every file) no lock is
    taken at all.

Running it
    Workers run ``migrate`` before their first write or read (the history sink and reader);
    ``yuqing db migrate [--json]`` runs it alone, as a deploy step or a Kubernetes Job.

Planning (``plan``, ``statements_to_run``, ``split_statements``) is pure; ``migrate`` is the I/O around it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pipeline.stores.clickhouse.engines import ChdbEngine, ClickHouseError, Engine, checked_identifier

log = logging.getLogger(__name__)

LEDGER = "schema_migrations"
LEDGER_COLUMNS = ("version", "name", "checksum", "applied_at")
# Renewed every third of it while held, so only a holder that died keeps others waiting, and not for long.
LOCK_TTL_S = 30
LOCK_WAIT_S = 600
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_ADD_COLUMN = re.compile(r"^ALTER\s+TABLE\s+\{db\}\.(\w+)\s+ADD\s+COLUMN\s+(\w+)\s", re.IGNORECASE)
_ANY_ADD_COLUMN = re.compile(r"\bADD\s+COLUMN\b", re.IGNORECASE)
_RENAME = re.compile(r"^RENAME\s+TABLE\s+\{db\}\.(\w+)\s+TO\s+\{db\}\.(\w+)$", re.IGNORECASE)
_ANY_RENAME = re.compile(r"\bRENAME\s+TABLE\b", re.IGNORECASE)


class MigrationError(ClickHouseError):
    """The migrations cannot be applied: an edited released file, a malformed file, or no lock."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # the file's text, ``{db}`` not yet replaced

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerRow:
    version: int
    name: str
    checksum: str


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    statements: int  # run, not counting those skipped as already done

    def as_dict(self) -> dict[str, int | str]:
        return {"version": self.version, "name": self.name, "checksum": self.checksum, "statements": self.statements}


# --- pure planning ---------------------------------------------------------------------------------


def parse_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """``(file name, text)`` pairs → migrations ordered by version; numbered 1, 2, 3 … without gaps."""
    migrations = []
    for file_name, text in files:
        found = _FILE_NAME.match(file_name)
        if not found:
            raise MigrationError(f"migration file {file_name!r} is not named NNNN_lower_snake.sql")
        migrations.append(Migration(int(found[1]), found[2], text))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3 … without gaps or repeats, got {versions}")
    for migration in migrations:
        split_statements(migration)  # a malformed file fails at load, before anything runs
    return migrations


def split_statements(migration: Migration) -> list[str]:
    """The file's statements, comments dropped; each ADD COLUMN and each RENAME TABLE must stand alone
    so it can be skipped."""
    code = "\n".join(line for line in migration.sql.splitlines() if not line.lstrip().startswith("--"))
    statements = [part.strip() for part in code.split(";") if part.strip()]
    for statement in statements:
        adds = len(_ANY_ADD_COLUMN.findall(statement))
        if adds and (adds > 1 or not _ADD_COLUMN.match(statement)):
            raise MigrationError(
                f"migration {migration.version:04d}: one ADD COLUMN per ALTER statement on a {{db}} table, "
                f"so it can be skipped when the column exists: {statement[:120]!r}"
            )
        if _ANY_RENAME.search(statement) and not _RENAME.match(statement):
            raise MigrationError(
                f"migration {migration.version:04d}: one table per RENAME TABLE {{db}}.a TO {{db}}.b, "
                f"so it can be skipped when it is done: {statement[:120]!r}"
            )
    return statements


def plan(migrations: Sequence[Migration], ledger: Iterable[LedgerRow]) -> list[Migration]:
    """The migrations still to apply, in order; refuses a released file whose checksum changed."""
    recorded: dict[int, LedgerRow] = {}
    for row in ledger:
        recorded.setdefault(row.version, row)
    known = {m.version for m in migrations}
    for migration in migrations:
        entry = recorded.get(migration.version)
        if entry is not None and entry.checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was applied "
                f"(ledger {entry.checksum[:12]}, file {migration.checksum[:12]}): released migrations are never "
                "edited; restore the file and put the change in a new migration"
            )
    newer = sorted(version for version in recorded if version not in known)
    if newer:
        log.warning("ClickHouse schema has migrations this release does not know: %s (left as they are)", newer)
    return [m for m in migrations if m.version not in recorded]


def statements_to_run(migration: Migration, database: str, columns: Mapping[str, set[str]]) -> list[str]:
    """The migration's statements for ``database``, less each ADD COLUMN whose column ``columns``
    (table → column names, as the database has them now) already holds, and each RENAME TABLE whose
    target table is already there."""
    database = checked_identifier(database)
    statements = []
    for statement in split_statements(migration):
        adds = _ADD_COLUMN.match(statement)
        if adds and adds[2] in columns.get(adds[1], set()):
            continue
        renames = _RENAME.match(statement)
        if renames and renames[2] in columns:
            continue
        statements.append(statement.replace("{db}", database))
    return statements


# --- I/O -------------------------------------------------------------------------------------------


def migrations_folder() -> Traversable:
    return resources.files("schemas") / "clickhouse" / "migrations"


def load_migrations(folder: Traversable | Path | None = None) -> list[Migration]:
    """The migration files of ``folder`` (default: the shipped ones)."""
    where = folder if folder is not None else migrations_folder()
    files = [(f.name, f.read_text(encoding="utf-8")) for f in where.iterdir() if f.name.endswith(".sql")]
    return parse_migrations(files)


def ledger_ddl(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {checked_identifier(database)}.{LEDGER}"
        " (version UInt32, name String, checksum String, applied_at DateTime('UTC'))"
        " ENGINE = MergeTree() ORDER BY version"
    )


def read_ledger(engine: Engine) -> list[LedgerRow] | None:
    """The ledger's rows, or None when the database or its ledger does not exist yet."""
    exists = engine.select(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": engine.database, "t": LEDGER},
    )
    if not exists:
        return None
    rows = engine.select(f"SELECT version, name, checksum FROM {engine.database}.{LEDGER} ORDER BY version")
    return [LedgerRow(int(row["version"]), str(row["name"]), str(row["checksum"])) for row in rows]


def table_columns(engine: Engine) -> dict[str, set[str]]:
    rows = engine.select("SELECT table, name FROM system.columns WHERE database = {db:String}", {"db": engine.database})
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(str(row["table"]), set()).add(str(row["name"]))
    return columns


MigrationLock = AbstractContextManager[object]
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def process_lock(database: str) -> Iterator[None]:
    """One migration at a time per database in this process (chDB: no other process has the data)."""
    with _local_locks_guard:
        lock = _local_locks.setdefault(database, threading.Lock())
    if not lock.acquire(timeout=LOCK_WAIT_S):
        raise MigrationError(f"another thread held the migration lock of {database} for over {LOCK_WAIT_S}s")
    try:
        yield
    finally:
        lock.release()


def lock_key(database: str) -> str:
    return f"yuqing:clickhouse:migrations:{database}"


@contextmanager
def redis_lock(redis_url: str, database: str, ttl_s: float = LOCK_TTL_S, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """The lock every worker of a deployment shares: SET NX PX with a token, per database, kept alive
    while held."""
    import redis
    from redis.exceptions import LockError, RedisError

    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
    # Not thread-local: the keeper thread renews it with the token the acquiring thread got.
    lock = client.lock(lock_key(database), timeout=ttl_s, blocking_timeout=wait_s, sleep=0.05, thread_local=False)
    done = threading.Event()

    def keep() -> None:
        while not done.wait(ttl_s / 3):
            try:
                lock.reacquire()
            except (LockError, RedisError) as exc:
                log.warning("cannot renew the migration lock of %s: %s", database, exc)
                return

    try:
        try:
            acquired = lock.acquire()
        except RedisError as exc:
            raise MigrationError(f"cannot take the migration lock in Redis: {exc}") from exc
        if not acquired:
            raise MigrationError(f"another process held the migration lock of {database} for over {wait_s:.0f}s")
        keeper = threading.Thread(target=keep, name=f"migration-lock-{database}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()
            try:
                lock.release()
            except LockError:  # it expired and may be someone else's now: theirs to release
                log.warning("the migration lock of %s expired before the migration ended", database)
    finally:
        client.close()


def default_lock(engine: Engine, redis_url: str | None = None) -> MigrationLock:
    """The process lock for chDB; otherwise the Redis lock at ``redis_url`` (default: the settings')."""
    if isinstance(engine, ChdbEngine):
        return process_lock(engine.database)
    if redis_url is None:
        from pipeline.settings import get_settings

        redis_url = get_settings().redis_url.get_secret_value()
    return redis_lock(redis_url, engine.database)


def migrate(
    engine: Engine,
    *,
    redis_url: str | None = None,
    lock: MigrationLock | None = None,
    migrations: Sequence[Migration] | None = None,
    on_applied: Callable[[Applied], None] | None = None,
) -> list[Applied]:
    """Bring the engine's database to the newest schema; what it applied, in order ([] when up to date).

    Idempotent, and safe to call from many workers at once (see the module's notes on the lock).
    ``lock`` replaces the default lock; ``migrations`` the shipped files (tests); ``on_applied`` hears of
    each migration as it completes (progress)."""
    known = list(migrations) if migrations is not None else load_migrations()
    ledger = read_ledger(engine)
    if ledger is not None and not plan(known, ledger):
        return []
    applied = []
    with lock if lock is not None else default_lock(engine, redis_url):
        engine.execute(f"CREATE DATABASE IF NOT EXISTS {checked_identifier(engine.database)}")
        engine.execute(ledger_ddl(engine.database))
        for migration in plan(known, read_ledger(engine) or []):
            statements = statements_to_run(migration, engine.database, table_columns(engine))
            for statement in statements:
                engine.execute(statement)
            engine.insert(
                LEDGER,
                LEDGER_COLUMNS,
                [(migration.version, migration.name, migration.checksum, datetime.now(UTC).replace(microsecond=0))],
            )
            done = Applied(migration.version, migration.name, migration.checksum, len(statements))
            log.info("ClickHouse %s: applied migration %04d_%s", engine.database, done.version, done.name)
            applied.append(done)
            if on_applied is not None:
                on_applied(done)
    return applied
