"""Study storage: check a storage URL without side effects, and open it safely for many workers.

Which storage when:
- one machine, one or a few `nas search` processes: SQLite (the default,
  `sqlite:///<study folder>/<name>.db`), readable by `optuna-dashboard sqlite:///...`;
- several machines: PostgreSQL (`postgresql://user:password@host/db`), every worker pointed at
  the same URL with `--storage` or the study file's `storage:`.

Optuna's RDB storage is used as is, with its heartbeat and `RetryHeartbeatStaleTrialCallback`,
so a worker that dies on another machine has its trial failed and re-queued after the grace
period. For SQLite three things are added, because SQLite locks the whole file and Optuna's
RDB storage was written for server databases:
- schema creation is serialised with an advisory lock on the database's folder (concurrent
  `create_all` on a new file races: "table already exists" / "database is locked");
- the database runs in WAL mode with a 60 s busy timeout, so readers (the dashboard) never
  block writers;
- every transaction starts with `BEGIN IMMEDIATE` (SQLAlchemy's documented pysqlite recipe), so
  read-then-write transactions, such as two workers popping the same queued trial, serialise
  instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from nas.errors import ConfigError, StudyError
from nas.files import exclusive_lock

SCHEMES = ("sqlite", "postgresql", "mysql")
HEARTBEAT_SECONDS = 10  # a running trial writes a heartbeat this often
GRACE_SECONDS = 30  # after this long without one, another worker fails and re-queues it
MAX_RETRY = 2  # times an interrupted trial is re-queued
SQLITE_TIMEOUT = 60  # seconds a writer waits for the lock before failing


def resolve_url(url: str, base: Path) -> str:
    """Make a relative SQLite path relative to `base` (the study file's folder)."""
    parsed = _parse(url, "storage")
    if parsed.drivername == "postgresql" and _missing("psycopg") and not _missing("psycopg2"):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (3); use psycopg2 where only it is installed
        return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            return str(parsed.set(database=str((base / path).resolve())))
    return url


def check_url(url: str, where: str = "storage") -> None:
    """Refuse an unsupported or unusable URL without connecting or creating anything."""
    parsed = _parse(url, where)
    backend = parsed.get_backend_name()
    if backend not in SCHEMES:
        raise ConfigError(
            f"{where} = {url!r}: the scheme {backend!r} is not supported; allowed: "
            "sqlite:///path.db, postgresql://user:pass@host/db, mysql+pymysql://user:pass@host/db"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as error:
        raise ConfigError(
            f"{where} = {masked(url)}: the database driver is missing ({error}); "
            "for PostgreSQL: pip install 'nas[postgres]' (psycopg2-binary)"
        ) from None
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"{where} = {url!r}: an in-memory SQLite database cannot hold a study; give a file")
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise ConfigError(f"{where} = {url!r}: the folder {folder} does not exist")


def masked(url: str) -> str:
    """The URL with any password hidden, for messages and provenance."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        return url


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def open_storage(url: str, *, create: bool) -> RDBStorage:
    """Open (and with `create`, initialise) the storage; without `create` it must already exist."""
    path = sqlite_path(url)
    if path is not None and not create and not path.is_file():
        raise StudyError(f"no study database at {path}; run `nas search` on the study first")
    kwargs = {}
    if path is not None:
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    try:
        with creation_lock(url), quiet_experimental():
            storage = RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                **kwargs,
            )
            if path is not None:
                _serialise_sqlite(storage.engine)
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise StudyError(f"cannot open storage {masked(url)}: {str(error).splitlines()[0]}") from None
    return storage


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on the SQLite file's folder (no-op for servers)."""
    path = sqlite_path(url)
    if path is None:
        with _server_lock(url):
            yield
        return
    with exclusive_lock(path.parent):
        yield


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features used on purpose (heartbeat, retry
    callback, metric names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@contextlib.contextmanager
def named_lock(url: str, name: str) -> Iterator[None]:
    """An exclusive lock of this storage's workers on `name` (e.g. one study's confirmation): a lock
    file beside the SQLite file, an advisory lock on a database server; released if the holder
    dies (the kernel closes the file, the server the connection)."""
    path = sqlite_path(url)
    if path is None:
        with _server_lock(url, zlib.crc32(name.encode()) & 0x7FFFFFFF, name[:64]):
            yield
        return
    with exclusive_lock(path.parent / f".{path.name}.{name}.lock"):
        yield


@contextlib.contextmanager
def _server_lock(url: str, key: int = 0x6E61735F, name: str = "nas_create") -> Iterator[None]:  # "nas_": creation
    """A database-wide advisory lock on a database server, held on a connection of its own: concurrent
    `create_all` on a new PostgreSQL database fails ("duplicate key value violates unique constraint
    pg_type_typname_nsp_index", "relation ... already exists"), and two creators would each queue the
    baselines. The lock is released when the connection closes, also if the process dies."""
    backend = make_url(url).get_backend_name()
    if backend not in ("postgresql", "mysql"):
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            if backend == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
            else:
                connection.exec_driver_sql(f"SELECT GET_LOCK('{name}', 86400)")
            yield
    finally:
        engine.dispose()


def _serialise_sqlite(engine: sqlalchemy.Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections predate the hooks


def _parse(url: str, where: str) -> sqlalchemy.URL:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where} = {url!r} is invalid; expected a database URL such as sqlite:///demo.db")
    try:
        return make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(
            f"{where} = {url!r} is not a database URL; expected for example sqlite:///demo.db "
            "or postgresql://user:pass@host/db"
        ) from None


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a storage write that the database refuses (read-only file, full disk, lost server)
    into one StudyError line. Optuna wraps the database's error in StorageInternalError; the
    message names the database's own reason. Every finished trial is already committed, so the
    study stays consistent and the same command resumes it once the cause is fixed."""
    refused = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
    try:
        yield
    except (*refused, AssertionError) as error:
        # When the write of a trial's final state fails, Optuna's trial loop raises an AssertionError
        # ("Should not reach.") from a `finally` block; the database's error is its context.
        cause = error.__context__ if isinstance(error, AssertionError) else error
        if not isinstance(cause, refused):
            raise
        raise StudyError(
            f"storage {masked(url)}: the database refused a write ({_root_cause(cause)}); finished trials "
            "are kept; fix the cause (permissions, free space, the server) and run the same command to resume"
        ) from None


def _root_cause(error: BaseException) -> str:
    """The innermost database error's first line, e.g. 'attempt to write a readonly database'."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    text = str(seen[-1]).strip() or type(seen[-1]).__name__
    return text.splitlines()[0]
