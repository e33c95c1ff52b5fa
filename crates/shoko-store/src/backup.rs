//! Consistent copies of a live database: SQLite's `VACUUM INTO` (a
//! transaction-consistent copy taken while writers continue), and for
//! PostgreSQL an exported snapshot that `pg_dump --snapshot` dumps and the
//! counts are read from, so the manifest matches the dump exactly.

use std::path::Path;

use sea_orm::{ConnectionTrait, DatabaseTransaction, IsolationLevel, Statement, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::catalogue::col;
use crate::{Engine, Store, StoreError};

/// Row counts a backup is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCounts {
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, i64>,
}

/// The tables whose rows a backup must hold.
const COUNTED: [&str; 8] = [
    "records",
    "items",
    "patrons",
    "loans",
    "holds",
    "fines",
    "staff_users",
    "audit_log",
];

async fn count_in<C: ConnectionTrait>(
    c: &C,
    backend: sea_orm::DbBackend,
) -> Result<BackupCounts, StoreError> {
    let mut counts = BackupCounts::default();
    for t in COUNTED {
        let row = c
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) FROM {t}"),
            ))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("COUNT(*) on {t} gave no row")))?;
        counts.tables.insert(t.to_owned(), col(&row, 0)?);
    }
    Ok(counts)
}

/// A PostgreSQL snapshot held open while `pg_dump` reads it.
pub struct Snapshot {
    txn: DatabaseTransaction,
    /// The id to give `pg_dump --snapshot`.
    pub id: String,
    /// The counts in this snapshot.
    pub counts: BackupCounts,
}

impl Snapshot {
    /// Lets the snapshot go (after the dump finished).
    pub async fn release(self) -> Result<(), StoreError> {
        self.txn.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Row counts of the tables a backup holds.
    pub async fn backup_counts(&self) -> Result<BackupCounts, StoreError> {
        count_in(&self.db, self.backend()).await
    }

    /// Writes a consistent copy of a SQLite database to `dest` (which must
    /// not exist) while writers continue.
    pub async fn vacuum_into(&self, dest: &Path) -> Result<(), StoreError> {
        if self.engine != Engine::Sqlite {
            return Err(StoreError::Corrupt("VACUUM INTO is for SQLite".into()));
        }
        let path = dest.display().to_string().replace('\'', "''");
        self.db
            .execute_raw(Statement::from_string(
                self.backend(),
                format!("VACUUM INTO '{path}'"),
            ))
            .await?;
        Ok(())
    }

    /// Opens a repeatable-read transaction on PostgreSQL and exports its
    /// snapshot, with the counts it sees.
    pub async fn export_snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self
            .db
            .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
            .await?;
        let row = txn
            .query_one_raw(Statement::from_string(
                self.backend(),
                "SELECT pg_export_snapshot()",
            ))
            .await?
            .ok_or_else(|| StoreError::Corrupt("pg_export_snapshot gave no row".into()))?;
        let id: String = col(&row, 0)?;
        let counts = count_in(&txn, self.backend()).await?;
        Ok(Snapshot { txn, id, counts })
    }
}
