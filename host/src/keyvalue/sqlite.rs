//! A store in one SQLite file, opened by each child that uses it.
//!
//! Many children and threads write the same file: WAL lets readers go on
//! while one writes, and each writer waits for the lock up to the
//! operation's time (`busy_timeout`) instead of failing at once. Every
//! read-modify-write (increment, compare-and-swap) and every batch is one
//! `BEGIN IMMEDIATE` transaction: it takes the write lock first, so two
//! children never both read the old value, and a child killed half-way
//! leaves the last committed state. `synchronous=NORMAL` in WAL mode loses
//! nothing when a process dies; after a power cut the last commits may be
//! missing, never half of one.

use super::{Backend, Failure, Idle, LIST_PAGE, add, stored_number};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::PathBuf;
use std::time::Duration;

pub struct Sqlite {
    file: PathBuf,
    idle: Idle<Connection>,
}

impl Sqlite {
    /// A store in `file`, created by the first child that opens it.
    pub fn new(file: PathBuf) -> Self {
        Sqlite {
            file,
            idle: Idle::new(),
        }
    }

    fn open(&self, within: Duration) -> rusqlite::Result<Connection> {
        let mut connection = Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(within)?;
        // Children opening a new file at once race to set it up, and SQLite
        // answers some of those races with "busy" at once rather than
        // waiting (a read turning into a write): try again until `within`.
        let until = std::time::Instant::now() + within;
        loop {
            match set_up(&mut connection) {
                Err(e) if busy(&e) && std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                done => return done.map(|()| connection),
            }
        }
    }

    /// Runs `operation` on a kept connection or a new one.
    fn with<T>(
        &self,
        within: Duration,
        operation: impl FnOnce(&mut Connection) -> Result<T, Fail>,
    ) -> Result<T, Failure> {
        let mut connection = match self.idle.take() {
            Some((connection, _)) => connection,
            None => self.open(within).map_err(|e| self.failed(e))?,
        };
        connection
            .busy_timeout(within)
            .map_err(|e| self.failed(e))?;
        match operation(&mut connection) {
            Ok(value) => {
                self.idle.put(connection);
                Ok(value)
            }
            // A transaction that failed rolled back when it was dropped;
            // the connection is still good unless the file is.
            Err(e) => {
                if connection.is_autocommit() {
                    self.idle.put(connection);
                }
                Err(match e {
                    Fail::Db(e) => self.failed(e),
                    Fail::Refused(why) => why,
                })
            }
        }
    }

    fn failed(&self, e: rusqlite::Error) -> Failure {
        if busy(&e) {
            "the SQLite file stayed locked by other writers for the whole timeout".into()
        } else {
            format!("SQLite: {e}")
        }
    }
}

/// WAL, and the table, in a transaction that takes the write lock first.
fn set_up(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute(
        "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) \
         WITHOUT ROWID",
        [],
    )?;
    transaction.commit()
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The value at `key` inside a transaction.
fn read(connection: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    connection
        .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

fn write(connection: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO kv (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![key, value])?;
    Ok(())
}

fn remove(connection: &Connection, key: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached("DELETE FROM kv WHERE key = ?1")?
        .execute([key])?;
    Ok(())
}

/// Why an operation failed: SQLite, or the data it found (which rolls
/// its transaction back as well).
enum Fail {
    Db(rusqlite::Error),
    Refused(Failure),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Db(e)
    }
}

impl Backend for Sqlite {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.file.display())
    }

    fn kind(&self) -> crate::stats::StoreKind {
        crate::stats::StoreKind::Sqlite
    }

    fn get(&self, key: &str, within: Duration) -> Result<Option<Vec<u8>>, Failure> {
        self.with(within, |connection| Ok(read(connection, key)?))
    }

    fn set(&self, key: &str, value: &[u8], within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| Ok(write(connection, key, value)?))
    }

    fn delete(&self, key: &str, within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| Ok(remove(connection, key)?))
    }

    fn exists(&self, key: &str, within: Duration) -> Result<bool, Failure> {
        self.with(within, |connection| {
            Ok(connection
                .prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
                .exists([key])?)
        })
    }

    fn list_keys(
        &self,
        cursor: Option<&str>,
        within: Duration,
    ) -> Result<(Vec<String>, Option<String>), Failure> {
        self.with(within, |connection| {
            // One more than a page: whether there is a next one.
            let mut statement = connection.prepare_cached(
                "SELECT key FROM kv WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2",
            )?;
            let mut keys = statement
                .query_map(params![cursor, LIST_PAGE as i64 + 1], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let next = (keys.len() > LIST_PAGE).then(|| {
                keys.truncate(LIST_PAGE);
                keys[LIST_PAGE - 1].clone()
            });
            Ok((keys, next))
        })
    }

    fn increment(&self, key: &str, delta: i64, within: Duration) -> Result<i64, Failure> {
        self.with(within, |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current =
                stored_number(read(&transaction, key)?.as_deref()).map_err(Fail::Refused)?;
            let next = add(current, delta).map_err(Fail::Refused)?;
            write(&transaction, key, next.to_string().as_bytes())?;
            transaction.commit()?;
            Ok(next)
        })
    }

    fn swap_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        within: Duration,
    ) -> Result<bool, Failure> {
        self.with(within, |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if read(&transaction, key)?.as_deref() != expected {
                return Ok(false);
            }
            write(&transaction, key, value)?;
            transaction.commit()?;
            Ok(true)
        })
    }

    fn get_many(&self, keys: &[String], within: Duration) -> Result<Vec<Option<Vec<u8>>>, Failure> {
        self.with(within, |connection| {
            // One snapshot for all of them.
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let values = keys
                .iter()
                .map(|key| read(&transaction, key))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            transaction.commit()?;
            Ok(values)
        })
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)], within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, value) in pairs {
                write(&transaction, key, value)?;
            }
            Ok(transaction.commit()?)
        })
    }

    fn delete_many(&self, keys: &[String], within: Duration) -> Result<(), Failure> {
        self.with(within, |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for key in keys {
                remove(&transaction, key)?;
            }
            Ok(transaction.commit()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempdir::Dir, Sqlite) {
        let dir = tempdir::Dir::new();
        let store = Sqlite::new(dir.0.join("kv.sqlite3"));
        (dir, store)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "mod_wasm-kv-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn values_are_kept_listed_and_removed() {
        let (_dir, store) = store();
        assert_eq!(store.get("a", T), Ok(None));
        store.set("a", b"1", T).unwrap();
        store.set("a", b"2", T).unwrap();
        store.set("b", b"", T).unwrap();
        assert_eq!(store.get("a", T), Ok(Some(b"2".to_vec())));
        assert_eq!(store.exists("b", T), Ok(true));
        assert_eq!(
            store.list_keys(None, T),
            Ok((vec!["a".into(), "b".into()], None))
        );
        store.delete("a", T).unwrap();
        assert_eq!(store.exists("a", T), Ok(false));
    }

    #[test]
    fn keys_are_listed_a_page_at_a_time() {
        let (_dir, store) = store();
        let pairs: Vec<_> = (0..LIST_PAGE + 5)
            .map(|i| (format!("k{i:05}"), vec![]))
            .collect();
        store.set_many(&pairs, T).unwrap();
        let (first, cursor) = store.list_keys(None, T).unwrap();
        assert_eq!(first.len(), LIST_PAGE);
        let (rest, end) = store.list_keys(cursor.as_deref(), T).unwrap();
        assert_eq!(rest.len(), 5);
        assert_eq!(end, None);
        assert_eq!(rest[4], format!("k{:05}", LIST_PAGE + 4));
    }

    #[test]
    fn increments_and_swaps_are_read_modify_write() {
        let (_dir, store) = store();
        assert_eq!(store.increment("n", 5, T), Ok(5));
        assert_eq!(store.increment("n", -2, T), Ok(3));
        assert_eq!(store.get("n", T), Ok(Some(b"3".to_vec())));
        store.set("text", b"x", T).unwrap();
        assert_eq!(
            store.increment("text", 1, T),
            Err("the value at the key is not a decimal integer".into())
        );
        assert_eq!(store.swap_if("n", Some(b"2"), b"9", T), Ok(false));
        assert_eq!(store.swap_if("n", Some(b"3"), b"9", T), Ok(true));
        assert_eq!(store.swap_if("new", None, b"1", T), Ok(true));
        assert_eq!(store.swap_if("new", None, b"2", T), Ok(false));
        assert_eq!(store.get("new", T), Ok(Some(b"1".to_vec())));
    }

    #[test]
    fn threads_counting_at_once_lose_nothing() {
        let (_dir, store) = store();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                // Each thread its own connection, as children have.
                scope.spawn(|| {
                    let own = Sqlite::new(store.file.clone());
                    for _ in 0..50 {
                        own.increment("n", 1, T).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.get("n", T), Ok(Some(b"200".to_vec())));
    }
}
