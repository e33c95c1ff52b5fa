//! Storage samples for the capacity forecast: sizes of the database, its
//! tables and (on PostgreSQL) tablespaces, measured on a schedule and kept
//! as series of (time, bytes).

use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, Statement};
use shoko_domain::capacity::Point;

use crate::catalogue::col;
use crate::{Engine, Store, StoreError};

impl Store {
    /// Bytes per table (SQLite from `dbstat`; PostgreSQL
    /// `pg_total_relation_size`, indexes and TOAST included), largest first.
    pub async fn table_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name \
                 HAVING name NOT LIKE 'sqlite_%' ORDER BY 2 DESC"
            }
            Engine::Postgres => {
                "SELECT relname::text, pg_total_relation_size(relid) \
                 FROM pg_stat_user_tables ORDER BY 2 DESC"
            }
        };
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await?;
        rows.iter()
            .map(|r| {
                let bytes: i64 = col(r, 1)?;
                Ok((col(r, 0)?, u64::try_from(bytes).unwrap_or(0)))
            })
            .collect()
    }

    /// Bytes per PostgreSQL tablespace; none on SQLite.
    pub async fn tablespace_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        if self.engine == Engine::Sqlite {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT spcname::text, pg_tablespace_size(oid) FROM pg_tablespace ORDER BY 1",
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let bytes: i64 = col(r, 1)?;
                Ok((col(r, 0)?, u64::try_from(bytes).unwrap_or(0)))
            })
            .collect()
    }

    /// Stores one round of samples taken at `at`.
    pub async fn insert_samples(
        &self,
        at: i64,
        samples: &[(String, u64)],
    ) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut insert = Query::insert();
        insert
            .into_table("storage_samples")
            .columns(["taken_at", "series", "bytes"]);
        for (series, bytes) in samples {
            insert.values_panic([
                at.into(),
                series.as_str().into(),
                i64::try_from(*bytes).unwrap_or(i64::MAX).into(),
            ]);
        }
        self.db.execute(&insert).await?;
        Ok(())
    }

    /// One series since `since` (Unix ms), oldest first.
    pub async fn samples(&self, series: &str, since: i64) -> Result<Vec<Point>, StoreError> {
        let rows = self
            .db
            .query_all(
                &Query::select()
                    .columns(["taken_at", "bytes"])
                    .from("storage_samples")
                    .and_where(Expr::col("series").eq(series))
                    .and_where(Expr::col("taken_at").gte(since))
                    .order_by("taken_at", Order::Asc)
                    .to_owned(),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let bytes: i64 = col(r, 1)?;
                Ok(Point {
                    at_ms: col(r, 0)?,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The latest round of samples: every series at the newest time.
    pub async fn latest_samples(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT series, bytes FROM storage_samples \
                 WHERE taken_at = (SELECT MAX(taken_at) FROM storage_samples) ORDER BY series",
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let bytes: i64 = col(r, 1)?;
                Ok((col(r, 0)?, u64::try_from(bytes).unwrap_or(0)))
            })
            .collect()
    }

    /// Forgets samples older than `before`; returns how many.
    pub async fn prune_samples(&self, before: i64) -> Result<u64, StoreError> {
        let done = self
            .db
            .execute(
                &Query::delete()
                    .from_table("storage_samples")
                    .and_where(Expr::col("taken_at").lt(before))
                    .to_owned(),
            )
            .await?;
        Ok(done.rows_affected())
    }
}
