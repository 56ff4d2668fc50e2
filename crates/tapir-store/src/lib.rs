//! tapir's SQLite store: what must outlive a restart. The only crate that knows SQL.
//!
//! # Layout
//! - [`Store`]: opens or creates the database, upgrades its schema one step at a time, and
//!   hands out permanent line ids.
//! - `accounts`: users, tokens, teams, line assignments and the audit log.
//!
//! # Invariants
//! - A line id is keyed by (instance name, PBX device key), never by position in a list, and
//!   is never reused: ids come from an `AUTOINCREMENT` key, so a purged id is not handed out
//!   again.
//! - Calls are blocking; the core runs them off its async workers.

mod accounts;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use tapir_model::LineId;

pub use accounts::{
    Assignment, AssignmentBatch, AuditEntry, AuditQuery, Grant, NewToken, NewUser, Seconds,
    TeamRecord, TokenKind, TokenRecord, UserChange, UserRecord,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error while {context}: {source}")]
    Sql {
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("line id space exhausted (id {0} does not fit in 32 bits)")]
    IdsExhausted(i64),
    /// A name that must be unique is taken, or a row referred to does not exist.
    #[error("{0}")]
    Conflict(String),
    #[error("database schema version {found} is newer than this tapir understands ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
}

/// One device as the store needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct DeviceIdentity<'a> {
    pub key: &'a str,
    pub address: &'a str,
    pub name: &'a str,
}

/// A line the store knows, whether or not its PBX still reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLine {
    pub id: LineId,
    pub device_key: String,
    pub address: String,
    pub name: String,
}

/// Each step upgrades the schema by one version; never edit a step once released.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE line_identity (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        device_key TEXT NOT NULL,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (instance, device_key)
    );",
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        tenant TEXT,
        role TEXT NOT NULL,
        friendly_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT,
        may_dial INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        kind TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE teams (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        member_right TEXT NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE team_members (
        team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        PRIMARY KEY (team_id, user_id)
    );
    CREATE TABLE line_assignments (
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        line_id INTEGER NOT NULL REFERENCES line_identity (id) ON DELETE CASCADE,
        relation TEXT NOT NULL,
        right TEXT NOT NULL,
        PRIMARY KEY (user_id, line_id)
    );
    CREATE INDEX line_assignments_by_line ON line_assignments (line_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        user TEXT NOT NULL,
        tenant TEXT,
        action TEXT NOT NULL,
        line INTEGER,
        call INTEGER,
        result TEXT NOT NULL
    );",
];

/// The open database.
#[derive(Debug)]
pub struct Store {
    pub(crate) conn: Connection,
}

pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { context, source }
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("enabling WAL"))?;
        Store::with_connection(conn)
    }

    /// A store that lives in memory only, for tests and throw-away runs.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Store::with_connection(conn)
    }

    fn with_connection(mut conn: Connection) -> Result<Store, StoreError> {
        // Assignments, tokens and memberships go with the line or user they belong to.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql("enabling foreign keys"))?;
        // The engine and the accounts service each hold a connection to the same file.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("setting the busy timeout"))?;
        migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// The permanent id of each device of `instance`, in the order given, creating ids for
    /// devices never seen before. Names and addresses are refreshed. One transaction.
    pub fn line_ids(
        &mut self,
        instance: &str,
        devices: &[DeviceIdentity<'_>],
    ) -> Result<Vec<LineId>, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("starting a transaction"))?;
        let mut ids = Vec::with_capacity(devices.len());
        {
            let mut find = tx
                .prepare("SELECT id FROM line_identity WHERE instance = ?1 AND device_key = ?2")
                .map_err(sql("preparing the line lookup"))?;
            let mut refresh = tx
                .prepare("UPDATE line_identity SET address = ?2, name = ?3 WHERE id = ?1")
                .map_err(sql("preparing the line refresh"))?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO line_identity (instance, device_key, address, name)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql("preparing the line insert"))?;
            for device in devices {
                let existing: Option<i64> = find
                    .query_row(params![instance, device.key], |row| row.get(0))
                    .optional()
                    .map_err(sql("looking up a line"))?;
                let id = match existing {
                    Some(id) => {
                        refresh
                            .execute(params![id, device.address, device.name])
                            .map_err(sql("refreshing a line"))?;
                        id
                    }
                    None => {
                        insert
                            .execute(params![instance, device.key, device.address, device.name])
                            .map_err(sql("creating a line id"))?;
                        tx.last_insert_rowid()
                    }
                };
                ids.push(LineId(
                    u32::try_from(id).map_err(|_| StoreError::IdsExhausted(id))?,
                ));
            }
        }
        tx.commit().map_err(sql("committing line ids"))?;
        Ok(ids)
    }

    /// Every line ever seen on `instance` and not purged, by id.
    pub fn known_lines(&self, instance: &str) -> Result<Vec<KnownLine>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT id, device_key, address, name FROM line_identity
                 WHERE instance = ?1 ORDER BY id",
            )
            .map_err(sql("preparing the known-lines query"))?;
        let rows = query
            .query_map(params![instance], |row| {
                Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(sql("listing known lines"))?;
        let mut lines = Vec::new();
        for row in rows {
            let (id, device_key, address, name) = row.map_err(sql("reading a known line"))?;
            let id = LineId(u32::try_from(id).map_err(|_| StoreError::IdsExhausted(id))?);
            lines.push(KnownLine {
                id,
                device_key,
                address,
                name,
            });
        }
        Ok(lines)
    }

    /// Every line not purged, of every instance: (instance, line), by id.
    pub fn all_known_lines(&self) -> Result<Vec<(String, KnownLine)>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT id, device_key, address, name, instance FROM line_identity ORDER BY id",
            )
            .map_err(sql("preparing the known-lines query"))?;
        let rows = query
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(sql("listing known lines"))?;
        let mut lines = Vec::new();
        for row in rows {
            let (id, device_key, address, name, instance) =
                row.map_err(sql("reading a known line"))?;
            let id = LineId(u32::try_from(id).map_err(|_| StoreError::IdsExhausted(id))?);
            let line = KnownLine {
                id,
                device_key,
                address,
                name,
            };
            lines.push((instance, line));
        }
        Ok(lines)
    }

    /// Forgets these lines. Their ids are never handed out again; a device that comes back
    /// later gets a new id.
    pub fn purge(&mut self, ids: &[LineId]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("starting a transaction"))?;
        let mut purged = 0;
        {
            let mut delete = tx
                .prepare("DELETE FROM line_identity WHERE id = ?1")
                .map_err(sql("preparing the purge"))?;
            for id in ids {
                purged += delete
                    .execute(params![id.0])
                    .map_err(sql("purging a line"))?;
            }
        }
        tx.commit().map_err(sql("committing the purge"))?;
        Ok(purged)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql("reading the schema version"))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (step, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sql("starting a migration"))?;
        tx.execute_batch(migration)
            .map_err(sql("migrating the schema"))?;
        tx.pragma_update(None, "user_version", step as i64 + 1)
            .map_err(sql("recording the schema version"))?;
        tx.commit().map_err(sql("committing a migration"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev<'a>(key: &'a str) -> DeviceIdentity<'a> {
        DeviceIdentity {
            key,
            address: key,
            name: "n",
        }
    }

    #[test]
    fn ids_are_stable_across_reopen_and_reordering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tapir.db");
        let first = Store::open(&path)
            .unwrap()
            .line_ids("pbx", &[dev("201"), dev("202")])
            .unwrap();
        let mut store = Store::open(&path).unwrap();
        let again = store
            .line_ids("pbx", &[dev("202"), dev("203"), dev("201")])
            .unwrap();
        assert_eq!(again[0], first[1]);
        assert_eq!(again[2], first[0]);
        assert!(!first.contains(&again[1]), "a new device gets a new id");
    }

    #[test]
    fn the_same_key_on_two_instances_gets_two_ids() {
        let mut store = Store::open_in_memory().unwrap();
        let a = store.line_ids("a", &[dev("201")]).unwrap();
        let b = store.line_ids("b", &[dev("201")]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn known_lines_are_listed_and_purged_ids_are_never_reused() {
        let mut store = Store::open_in_memory().unwrap();
        let ids = store.line_ids("pbx", &[dev("201"), dev("202")]).unwrap();
        let known = store.known_lines("pbx").unwrap();
        assert_eq!(known.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
        assert_eq!(known[1].device_key, "202");
        assert!(store.known_lines("other").unwrap().is_empty());

        assert_eq!(store.purge(&[ids[1]]).unwrap(), 1);
        assert_eq!(store.known_lines("pbx").unwrap().len(), 1);
        let back = store.line_ids("pbx", &[dev("202"), dev("203")]).unwrap();
        assert!(
            back.iter().all(|id| !ids.contains(id) && *id > ids[1]),
            "{back:?} reuses {ids:?}"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tapir.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }
}
