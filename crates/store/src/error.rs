//! The store's typed errors: what went wrong in SQLite, named so callers never read driver codes.
//!
//! Every error the driver raises becomes one of these through `From`, so `?` inside a `read` or
//! `write` closure classifies it. Each variant born of the driver displays as `sqlite: ` and the
//! driver's own message, which is what logs and error bodies showed before the classification.

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A UNIQUE or PRIMARY KEY constraint failed.
    #[error("sqlite: {message}")]
    Unique {
        /// What SQLite names after `UNIQUE constraint failed:`, e.g. `users.email, users.name`
        /// (empty when it gave no message).
        constraint: String,
        /// SQLite's whole message.
        message: String,
    },
    /// Another constraint failed (NOT NULL, CHECK, FOREIGN KEY, ...).
    #[error("sqlite: {message}")]
    Constraint {
        /// SQLite's message.
        message: String,
    },
    /// The database stayed locked by another connection past the busy timeout.
    #[error("sqlite: {0}")]
    Busy(String),
    /// The file is damaged or is not a database.
    #[error("sqlite: {0}")]
    Corrupt(String),
    /// A write was attempted on a read-only connection or file.
    #[error("sqlite: {0}")]
    ReadOnly(String),
    /// The statement was stopped by a progress handler or an interrupt.
    #[error("sqlite: {0}")]
    Interrupted(String),
    /// A query that must return a row returned none.
    #[error("sqlite: Query returned no rows")]
    NotFound,
    /// Any other SQLite or conversion failure.
    #[error("sqlite: {0}")]
    Other(crate::sql::Error),
    /// The read pool could not hand out a connection.
    #[error("read pool: {0}")]
    Pool(String),
    /// The transaction holding a write could not be started or committed; nothing of it stands.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer thread is gone (the database is closing).
    #[error("the database is closed")]
    Closed,
    /// A write was asked for on a thread that holds the database's writer in a transaction: it
    /// would wait for itself. The write belongs inside that transaction.
    #[error("the database writer is held by a transaction of this call; write inside it")]
    Held,
    /// The held transaction ended (its time limit, or a failure) and was rolled back.
    #[error("the transaction ended before this step (time limit) and was rolled back")]
    TransactionEnded,
    /// Synchronous shipping: the write is committed on this node, but its commit was not
    /// stored in the backup target within the wait, so it is not acknowledged.
    #[error("{0}")]
    NotShipped(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// Reading or creating files failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether a constraint failed: a unique violation or any other (NOT NULL, CHECK, foreign
    /// key), for inserts where any refusal means the name is taken.
    pub fn is_constraint(&self) -> bool {
        matches!(self, Error::Unique { .. } | Error::Constraint { .. })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as Code;
        let (failure, text) = match &e {
            rusqlite::Error::QueryReturnedNoRows => return Error::NotFound,
            rusqlite::Error::SqliteFailure(failure, text) => (*failure, text.clone()),
            _ => return Error::Other(e),
        };
        let message = e.to_string();
        match failure.code {
            Code::ConstraintViolation
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                let constraint = text
                    .as_deref()
                    .and_then(|t| t.split_once(':'))
                    .map(|(_, names)| names.trim().to_string())
                    .unwrap_or_default();
                Error::Unique {
                    constraint,
                    message,
                }
            }
            Code::ConstraintViolation => Error::Constraint { message },
            Code::DatabaseBusy => Error::Busy(message),
            Code::DatabaseCorrupt | Code::NotADatabase => Error::Corrupt(message),
            Code::ReadOnly => Error::ReadOnly(message),
            Code::OperationInterrupted => Error::Interrupted(message),
            _ => Error::Other(e),
        }
    }
}

/// Result alias for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;
    use rusqlite::Connection;

    fn failing(sql: &str) -> Error {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT UNIQUE, b TEXT NOT NULL DEFAULT '');
             INSERT INTO t (id, a) VALUES ('1', 'x');",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap_err().into()
    }

    #[test]
    fn a_duplicate_value_is_a_unique_violation_naming_its_column() {
        let e = failing("INSERT INTO t (id, a) VALUES ('2', 'x')");
        assert!(
            matches!(&e, Error::Unique { constraint, .. } if constraint == "t.a"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "sqlite: UNIQUE constraint failed: t.a");
    }

    #[test]
    fn a_duplicate_primary_key_is_a_unique_violation() {
        let e = failing("INSERT INTO t (id, a) VALUES ('1', 'y')");
        assert!(
            matches!(&e, Error::Unique { constraint, .. } if constraint == "t.id"),
            "{e:?}"
        );
    }

    #[test]
    fn a_missing_value_is_another_constraint() {
        let e = failing("INSERT INTO t (id, a, b) VALUES ('3', 'z', NULL)");
        assert!(matches!(e, Error::Constraint { .. }), "{e:?}");
        assert!(e.is_constraint());
    }

    #[test]
    fn no_rows_is_not_found_and_syntax_is_other() {
        let conn = Connection::open_in_memory().unwrap();
        let none: Error = conn
            .query_row("SELECT 1 WHERE 0", [], |r| r.get::<_, i64>(0))
            .unwrap_err()
            .into();
        assert!(matches!(none, Error::NotFound));
        assert_eq!(none.to_string(), "sqlite: Query returned no rows");
        let syntax: Error = conn.execute_batch("SELEC 1").unwrap_err().into();
        assert!(matches!(syntax, Error::Other(_)), "{syntax:?}");
    }
}
