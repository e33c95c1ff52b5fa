//! Catalogue storage: bibliographic records, items, campuses, locations, item
//! types, import runs, and the outbox rows every catalogue change writes.

use std::collections::HashMap;

use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, OnConflict, Query, SimpleExpr, Value};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement};
use serde::Serialize;
use shoko_domain::{BibSummary, ItemSpec};

use crate::write::{AuditEntry, lock_key, record, replay};
pub(crate) use crate::writer::Txn;
use crate::{Store, StoreError, WriteCtx};

/// Rows per multi-row INSERT: 18 columns × 1,000 rows stays below the
/// bind-parameter limits of both engines (SQLite 32,766; PostgreSQL 65,535).
const ROWS_PER_INSERT: usize = 1000;

/// A record ready to be written by an import: its derived fields, the items
/// read from its holdings fields, and its column values, prepared by
/// [`ImportRecord::new`] on the import's reading thread so that the writing
/// thread only binds them.
#[derive(Debug, Clone)]
pub struct ImportRecord {
    /// Position in its file (1-based), for messages.
    pub number: u64,
    /// Derived fields.
    pub summary: BibSummary,
    /// Items from holdings fields.
    pub items: Vec<ItemSpec>,
    /// Values of the columns after `id` up to `format`, then the MARC record.
    row: Vec<Value>,
}

impl ImportRecord {
    /// Prepares a record; `marc` is the record as ISO 2709 UTF-8.
    pub fn new(
        number: u64,
        summary: BibSummary,
        marc: Vec<u8>,
        items: Vec<ItemSpec>,
    ) -> ImportRecord {
        let s = &summary;
        let row = vec![
            s.keys.control.clone().into(),
            s.keys.system.clone().into(),
            s.control_number.clone().into(),
            s.title.clone().into(),
            s.title_reading.clone().into(),
            json_list(&s.authors).into(),
            json_list(&s.subjects).into(),
            json_list(&s.isbns).into(),
            json_list(&s.issns).into(),
            s.publisher.clone().into(),
            s.year.into(),
            s.language.clone().into(),
            s.format.code().into(),
            Value::Bytes(Some(marc)),
        ];
        ImportRecord {
            number,
            summary,
            items,
            row,
        }
    }
}

/// An item that an import could not store, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWarning {
    /// The record's position in its file.
    pub number: u64,
    /// What happened.
    pub reason: String,
}

/// What one committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// New records.
    pub imported: u64,
    /// Records that replaced an existing one with the same keys.
    pub updated: u64,
    /// Items created.
    pub items_created: u64,
    /// Items whose call number, campus, location or type were refreshed.
    pub items_updated: u64,
    /// Items that could not be stored.
    pub warnings: Vec<ItemWarning>,
}

/// What a change to one record came to.
#[derive(Debug, Clone)]
pub enum RecordWrite {
    /// Stored; the record as it is now.
    Written(Box<RecordRow>),
    /// Deleted.
    Deleted,
    /// No record has this id.
    NotFound,
    /// Someone changed the record since the editor read it.
    Stale {
        /// The record's version now.
        current: i64,
    },
    /// The record still has this many items.
    HasItems(i64),
}

/// A stored bibliographic record with its derived fields.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordRow {
    /// Shoko's id.
    pub id: i64,
    /// 001.
    pub control_number: Option<String>,
    /// Title to show.
    pub title: String,
    /// Title by which to sort.
    pub title_reading: String,
    /// Names.
    pub authors: Vec<String>,
    /// Subject headings.
    pub subjects: Vec<String>,
    /// ISBN-13s.
    pub isbns: Vec<String>,
    /// ISSNs.
    pub issns: Vec<String>,
    /// Publisher.
    pub publisher: Option<String>,
    /// Year of publication.
    pub year: Option<i32>,
    /// Language code.
    pub language: Option<String>,
    /// Broad format code.
    pub format: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
    /// Incremented by every change.
    pub version: i64,
    /// ISO 2709 UTF-8.
    #[serde(skip)]
    pub marc: Vec<u8>,
}

/// A stored item.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoredItem {
    /// Shoko's id.
    pub id: i64,
    /// The record the item is a copy of.
    pub record_id: i64,
    /// Barcode.
    pub barcode: String,
    /// Call number.
    pub call_number: Option<String>,
    /// Owning campus.
    pub campus: String,
    /// Shelving location.
    pub location: Option<String>,
    /// Item type.
    pub item_type: String,
    /// Status code.
    pub status: String,
    /// Incremented by every change.
    pub version: i64,
}

/// Campuses, locations and item types, as configured.
#[derive(Debug, Clone, Default)]
pub struct ReferenceData {
    /// (code, Japanese name, English name).
    pub campuses: Vec<(String, String, String)>,
    /// (campus, code, Japanese name, English name).
    pub locations: Vec<(String, String, String, String)>,
    /// (code, Japanese name, English name).
    pub item_types: Vec<(String, String, String)>,
}

/// Row counts of the catalogue tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Bibliographic records.
    pub records: i64,
    /// Items.
    pub items: i64,
    /// Outbox rows.
    pub outbox: i64,
}

pub(crate) fn col<T: sea_orm::TryGetable, R: Row + ?Sized>(
    row: &R,
    i: usize,
) -> Result<T, StoreError> {
    row.at(i)
}

/// A row a mapper reads by position: a whole result row, or one read's
/// part of the row that several reads joined into one gave (see
/// `WriteTx::read_together`).
pub(crate) trait Row {
    /// The value of column `i`, counted from this row's first.
    fn at<T: sea_orm::TryGetable>(&self, i: usize) -> Result<T, StoreError>;
}

impl Row for QueryResult {
    fn at<T: sea_orm::TryGetable>(&self, i: usize) -> Result<T, StoreError> {
        self.try_get_by_index(i).map_err(StoreError::from)
    }
}

/// The columns of `row` from `offset` on.
pub(crate) struct Part<'a> {
    pub(crate) row: &'a QueryResult,
    pub(crate) offset: usize,
}

impl Row for Part<'_> {
    fn at<T: sea_orm::TryGetable>(&self, i: usize) -> Result<T, StoreError> {
        self.row.at(self.offset + i)
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serialises")
}

fn parse_list(id: i64, what: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("record {id}: {what} is not a JSON list: {e}")))
}

/// The columns of `records`, the MARC record last so that the columns
/// before it are the record's summary (`SUMMARY_COLUMNS`).
const RECORD_COLUMNS: [&str; 18] = [
    "id",
    "match_control",
    "match_system",
    "control_number",
    "title",
    "title_reading",
    "authors",
    "subjects",
    "isbns",
    "issns",
    "publisher",
    "year",
    "language",
    "format",
    "created_at",
    "updated_at",
    "version",
    "marc",
];

/// Every record column but the MARC record: what indexing and hit lists read.
const SUMMARY_COLUMNS: &[&str] = RECORD_COLUMNS.split_last().expect("columns").1;

/// The full row of a record in `RECORD_COLUMNS` order: id, the prepared
/// values, timestamps, version 1, and the MARC record (the last prepared value).
fn full_row(id: i64, mut row: Vec<Value>, now: i64, out: &mut Vec<Value>) {
    let marc = row.pop().unwrap_or(Value::Bytes(None));
    out.push(id.into());
    out.extend(row);
    out.extend([now.into(), now.into(), 1i64.into(), marc]);
}

fn row_to_record(row: &QueryResult) -> Result<RecordRow, StoreError> {
    record_from(row, true)
}

fn row_to_summary(row: &QueryResult) -> Result<RecordRow, StoreError> {
    record_from(row, false)
}

/// A record from `RECORD_COLUMNS` (with the MARC record) or `SUMMARY_COLUMNS`.
fn record_from(row: &QueryResult, with_marc: bool) -> Result<RecordRow, StoreError> {
    let id: i64 = col(row, 0)?;
    Ok(RecordRow {
        id,
        control_number: col(row, 3)?,
        title: col(row, 4)?,
        title_reading: col(row, 5)?,
        authors: parse_list(id, "authors", &col::<String, _>(row, 6)?)?,
        subjects: parse_list(id, "subjects", &col::<String, _>(row, 7)?)?,
        isbns: parse_list(id, "isbns", &col::<String, _>(row, 8)?)?,
        issns: parse_list(id, "issns", &col::<String, _>(row, 9)?)?,
        publisher: col(row, 10)?,
        year: col(row, 11)?,
        language: col(row, 12)?,
        format: col(row, 13)?,
        created_at: col(row, 14)?,
        updated_at: col(row, 15)?,
        version: col(row, 16)?,
        marc: if with_marc { col(row, 17)? } else { Vec::new() },
    })
}

pub(crate) const ITEM_COLUMNS: [&str; 9] = [
    "id",
    "record_id",
    "barcode",
    "call_number",
    "campus_code",
    "location_code",
    "item_type",
    "status",
    "version",
];

pub(crate) fn row_to_item<R: Row + ?Sized>(row: &R) -> Result<StoredItem, StoreError> {
    Ok(StoredItem {
        id: col(row, 0)?,
        record_id: col(row, 1)?,
        barcode: col(row, 2)?,
        call_number: col(row, 3)?,
        campus: col(row, 4)?,
        location: col(row, 5)?,
        item_type: col(row, 6)?,
        status: col(row, 7)?,
        version: col(row, 8)?,
    })
}

impl Store {
    /// Reserves `n` consecutive ids from a named counter, inside the caller's
    /// transaction: ids and the rows that use them commit together, and a
    /// rolled-back batch gives its ids back. On PostgreSQL the counter row
    /// stays locked until commit, which serialises catalogue writers; on
    /// SQLite the write lock does that already.
    async fn allocate_ids(txn: &Txn, counter: &str, n: i64) -> Result<i64, StoreError> {
        txn.execute(
            &Query::insert()
                .into_table("counters")
                .columns(["name", "value"])
                .values_panic([counter.into(), 0i64.into()])
                .on_conflict(OnConflict::column("name").do_nothing().to_owned())
                .to_owned(),
        )
        .await?;
        let row = txn
            .query_one(
                &Query::update()
                    .table("counters")
                    .value("value", Expr::col("value").add(n))
                    .and_where(Expr::col("name").eq(counter))
                    .returning_col("value")
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("counter {counter} vanished")))?;
        let last: i64 = col(&row, 0)?;
        Ok(last - n + 1)
    }

    /// Makes the campuses, locations and item types in the database match the
    /// configuration (insert or rename; nothing is deleted, since items may
    /// still refer to a code that was removed from the configuration).
    pub async fn sync_reference_data(&self, data: &ReferenceData) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        for (code, ja, en) in &data.campuses {
            upsert_named(&txn, "campuses", &[("code", code)], ja, en).await?;
        }
        for (campus, code, ja, en) in &data.locations {
            upsert_named(
                &txn,
                "locations",
                &[("campus_code", campus), ("code", code)],
                ja,
                en,
            )
            .await?;
        }
        for (code, ja, en) in &data.item_types {
            upsert_named(&txn, "item_types", &[("code", code)], ja, en).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Starts an import run and returns its id.
    pub async fn begin_import_run(&self, files: &[String], now: i64) -> Result<i64, StoreError> {
        let txn = self.begin_write().await?;
        let row = txn
            .query_one(
                &Query::insert()
                    .into_table("import_runs")
                    .columns([
                        "files",
                        "status",
                        "started_at",
                        "records_committed",
                        "imported",
                        "updated",
                        "rejected",
                    ])
                    .values_panic([
                        json_list(files).into(),
                        "running".into(),
                        now.into(),
                        0i64.into(),
                        0i64.into(),
                        0i64.into(),
                        0i64.into(),
                    ])
                    .returning_col("id")
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
        let id = col(&row, 0)?;
        txn.commit().await?;
        Ok(id)
    }

    /// Marks an import run finished with its rejected count.
    pub async fn finish_import_run(
        &self,
        run: i64,
        rejected: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                &Query::update()
                    .table("import_runs")
                    .value("status", "finished")
                    .value("finished_at", now)
                    .value("rejected", rejected as i64)
                    .and_where(Expr::col("id").eq(run))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// The records committed so far by an import run (as the database says).
    pub async fn import_run_committed(
        &self,
        run: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(["status", "records_committed"])
                    .from("import_runs")
                    .and_where(Expr::col("id").eq(run))
                    .to_owned(),
            )
            .await?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    /// Writes one import batch in one transaction: new records inserted,
    /// records with known keys (001+003, else 035) updated, their items
    /// created or refreshed, an outbox row for each record, and the run's
    /// progress. Either all of it is committed or none of it.
    pub async fn write_import_batch(
        &self,
        run: i64,
        mut batch: Vec<ImportRecord>,
        now: i64,
    ) -> Result<BatchOutcome, StoreError> {
        let mut outcome = BatchOutcome::default();
        if batch.is_empty() {
            return Ok(outcome);
        }
        let txn = self.begin_write().await?;
        // Ids of records that turn out to be updates become gaps, which is harmless.
        let first_id = Self::allocate_ids(&txn, "records", batch.len() as i64).await?;

        let controls: Vec<String> = batch
            .iter()
            .filter_map(|r| r.summary.keys.control.clone())
            .collect();
        let systems: Vec<String> = batch
            .iter()
            .filter_map(|r| r.summary.keys.system.clone())
            .collect();
        let mut by_control: HashMap<String, i64> = HashMap::new();
        let mut by_system: HashMap<String, i64> = HashMap::new();
        for (column, keys, map) in [
            ("match_control", &controls, &mut by_control),
            ("match_system", &systems, &mut by_system),
        ] {
            for chunk in keys.chunks(ROWS_PER_INSERT * 2) {
                let rows = txn
                    .query_all(
                        &Query::select()
                            .columns(["id", column])
                            .from("records")
                            .and_where(Expr::col(column).is_in(chunk.iter().cloned()))
                            .to_owned(),
                    )
                    .await?;
                for row in rows {
                    map.insert(col(&row, 1)?, col(&row, 0)?);
                }
            }
        }

        // Decide, in file order, which records are new and which replace one.
        let mut new_rows: Vec<(i64, usize)> = Vec::new();
        let mut new_index: HashMap<i64, usize> = HashMap::new();
        let mut updates: Vec<(i64, usize)> = Vec::new();
        for (k, r) in batch.iter().enumerate() {
            let keys = &r.summary.keys;
            // 001+003 decides when the record has an 001: distinct records of
            // one library may share an 035 (an OCLC number), and must not merge.
            let existing = match (&keys.control, &keys.system) {
                (Some(c), _) => by_control.get(c),
                (None, Some(s)) => by_system.get(s),
                (None, None) => None,
            }
            .copied();
            match existing {
                Some(id) => {
                    outcome.updated += 1;
                    match new_index.get(&id) {
                        // The same record twice in one batch: the later one wins.
                        Some(&i) => new_rows[i].1 = k,
                        None => updates.push((id, k)),
                    }
                }
                None => {
                    let id = first_id + k as i64;
                    outcome.imported += 1;
                    new_index.insert(id, new_rows.len());
                    new_rows.push((id, k));
                    if let Some(c) = &keys.control {
                        by_control.insert(c.clone(), id);
                    }
                    if let Some(s) = &keys.system {
                        by_system.insert(s.clone(), id);
                    }
                }
            }
        }

        let backend = txn.get_database_backend();
        for chunk in new_rows.chunks(ROWS_PER_INSERT) {
            let mut values = Vec::with_capacity(chunk.len() * RECORD_COLUMNS.len());
            for &(id, k) in chunk {
                full_row(id, std::mem::take(&mut batch[k].row), now, &mut values);
            }
            let sql = insert_records_sql(backend, chunk.len());
            txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        for &(id, k) in &updates {
            update_record_row(&txn, id, std::mem::take(&mut batch[k].row), now, None).await?;
        }

        let touched: Vec<(i64, &ImportRecord)> = new_rows
            .iter()
            .chain(updates.iter())
            .map(|&(id, k)| (id, &batch[k]))
            .collect();
        write_items(&txn, &touched, now, &mut outcome).await?;

        let ids: Vec<i64> = touched.iter().map(|(id, _)| *id).collect();
        write_outbox(&txn, &ids, OUTBOX_RECORD, now).await?;
        txn.execute(
            &Query::update()
                .table("import_runs")
                .value(
                    "records_committed",
                    Expr::col("records_committed").add(batch.len() as i64),
                )
                .value(
                    "imported",
                    Expr::col("imported").add(outcome.imported as i64),
                )
                .value("updated", Expr::col("updated").add(outcome.updated as i64))
                .and_where(Expr::col("id").eq(run))
                .to_owned(),
        )
        .await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// One record by id.
    pub async fn record(&self, id: i64) -> Result<Option<RecordRow>, StoreError> {
        let mut found = self.records_where(Expr::col("id").eq(id), None).await?;
        Ok(found.pop())
    }

    /// Records whose 001 is this control number (several organisations may
    /// use the same number, so this is a list).
    pub async fn records_by_control_number(
        &self,
        number: &str,
    ) -> Result<Vec<RecordRow>, StoreError> {
        self.records_where(Expr::col("control_number").eq(number), None)
            .await
    }

    /// Records in id order after `after`, at most `limit`: the export's and
    /// the reindexer's cursor, constant memory however large the catalogue.
    pub async fn records_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError> {
        self.records_where(Expr::col("id").gt(after), Some(limit))
            .await
    }

    /// Record ids in order after `after`, at most `limit`: the rebuild's cursor.
    pub async fn record_ids_after(&self, after: i64, limit: u64) -> Result<Vec<i64>, StoreError> {
        self.select_where(
            "records",
            &["id"],
            Expr::col("id").gt(after),
            "id",
            Some(limit),
            |r| col(r, 0),
        )
        .await
    }

    /// The items of a record, by barcode.
    pub async fn items_of(&self, record_id: i64) -> Result<Vec<StoredItem>, StoreError> {
        self.select_where(
            "items",
            &ITEM_COLUMNS,
            Expr::col("record_id").eq(record_id),
            "barcode",
            None,
            row_to_item,
        )
        .await
    }

    /// The items of several records (for indexing a page of records at once).
    pub async fn items_of_records(
        &self,
        record_ids: &[i64],
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.select_in("items", &ITEM_COLUMNS, "record_id", record_ids, row_to_item)
            .await
    }

    /// Records by id without their MARC records (empty `marc`): for the
    /// indexer, which needs only the derived fields.
    pub async fn record_summaries(&self, ids: &[i64]) -> Result<Vec<RecordRow>, StoreError> {
        self.select_in("records", SUMMARY_COLUMNS, "id", ids, row_to_summary)
            .await
    }

    /// Records by id (missing ids are simply absent).
    pub async fn records_by_ids(&self, ids: &[i64]) -> Result<Vec<RecordRow>, StoreError> {
        self.select_in("records", &RECORD_COLUMNS, "id", ids, row_to_record)
            .await
    }

    async fn records_where(
        &self,
        condition: SimpleExpr,
        limit: Option<u64>,
    ) -> Result<Vec<RecordRow>, StoreError> {
        self.select_where(
            "records",
            &RECORD_COLUMNS,
            condition,
            "id",
            limit,
            row_to_record,
        )
        .await
    }

    /// `SELECT columns FROM table WHERE condition ORDER BY order [LIMIT limit]`.
    async fn select_where<T>(
        &self,
        table: &'static str,
        columns: &[&'static str],
        condition: SimpleExpr,
        order: &'static str,
        limit: Option<u64>,
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut select = Query::select();
        select
            .columns(columns.iter().copied())
            .from(table)
            .and_where(condition)
            .order_by(order, sea_orm::sea_query::Order::Asc);
        if let Some(n) = limit {
            select.limit(n);
        }
        let rows = self.db.query_all(&select).await?;
        rows.iter().map(map).collect()
    }

    /// `SELECT columns FROM table WHERE key IN (ids)`, in chunks that stay
    /// under both engines' bind-parameter limits.
    async fn select_in<T>(
        &self,
        table: &'static str,
        columns: &[&'static str],
        key: &'static str,
        ids: &[i64],
        map: fn(&QueryResult) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let condition = Expr::col(key).is_in(chunk.iter().copied());
            out.extend(
                self.select_where(table, columns, condition, key, None, map)
                    .await?,
            );
        }
        Ok(out)
    }

    /// One item by barcode.
    pub async fn item_by_barcode(&self, barcode: &str) -> Result<Option<StoredItem>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(ITEM_COLUMNS)
                    .from("items")
                    .and_where(Expr::col("barcode").eq(barcode))
                    .to_owned(),
            )
            .await?;
        row.as_ref().map(row_to_item).transpose()
    }

    /// Adds one item to a record, with its outbox row and audit entry, in
    /// one transaction. Returns `None` when the barcode is already taken. A
    /// repeated request (same idempotency key) returns the item it made.
    pub async fn add_item(
        &self,
        record_id: i64,
        item: &ItemSpec,
        ctx: &WriteCtx,
    ) -> Result<Option<StoredItem>, StoreError> {
        let txn = self.begin_write().await?;
        lock_key(self, &txn, ctx).await?;
        if let Some(id) = replay::<i64>(&txn, ctx).await? {
            let item = item_in(&txn, Expr::col("id").eq(id)).await?;
            txn.rollback().await?;
            return Ok(item);
        }
        if item_in(&txn, Expr::col("barcode").eq(item.barcode.as_str()))
            .await?
            .is_some()
        {
            txn.rollback().await?;
            return Ok(None);
        }
        let now = ctx.now;
        let mut insert = Query::insert();
        insert.into_table("items").columns(
            ITEM_COLUMNS
                .iter()
                .skip(1)
                .copied()
                .chain(["created_at", "updated_at"]),
        );
        insert.values_panic(item_values(record_id, item, now));
        txn.execute(&insert).await?;
        write_outbox(&txn, &[record_id], OUTBOX_RECORD, now).await?;
        let stored = item_in(&txn, Expr::col("barcode").eq(item.barcode.as_str()))
            .await?
            .ok_or_else(|| StoreError::Corrupt("inserted item not found".into()))?;
        let audit = vec![AuditEntry::new(
            "item.create",
            "item",
            stored.id,
            None::<&()>,
            Some(&stored),
        )];
        record(&txn, ctx, audit, &stored.id).await?;
        txn.commit().await?;
        Ok(Some(stored))
    }

    /// Replaces a record's MARC record and derived fields (its items are
    /// kept), with its outbox row and audit entry, in one transaction.
    /// `expected_version` is the version the editor started from: a record
    /// changed since then is not overwritten. A repeated request (same
    /// idempotency key) returns the record as it is.
    pub async fn replace_record(
        &self,
        id: i64,
        expected_version: i64,
        record_: ImportRecord,
        ctx: &WriteCtx,
    ) -> Result<RecordWrite, StoreError> {
        let txn = self.begin_write().await?;
        lock_key(self, &txn, ctx).await?;
        if replay::<i64>(&txn, ctx).await?.is_some() {
            txn.rollback().await?;
            return Ok(match self.record(id).await? {
                Some(r) => RecordWrite::Written(Box::new(r)),
                None => RecordWrite::NotFound,
            });
        }
        if let Some(refused) = refuse_unless_at(&txn, id, expected_version).await? {
            txn.rollback().await?;
            return Ok(refused);
        }
        // A damaged row (the edit repairs it) is audited as unreadable before.
        let before = match summary_in(&txn, id).await {
            Err(StoreError::Corrupt(_)) => None,
            other => other?,
        };
        update_record_row(&txn, id, record_.row, ctx.now, Some(expected_version)).await?;
        write_outbox(&txn, &[id], OUTBOX_RECORD, ctx.now).await?;
        let after = summary_in(&txn, id).await?;
        let audit = vec![AuditEntry::new(
            "record.replace",
            "record",
            id,
            before.as_ref(),
            after.as_ref(),
        )];
        record(&txn, ctx, audit, &id).await?;
        txn.commit().await?;
        let stored = self
            .record(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("record {id} vanished after update")))?;
        Ok(RecordWrite::Written(Box::new(stored)))
    }

    /// Deletes a record that has no items, with its outbox row and audit
    /// entry, in one transaction. A record with items is refused: items are
    /// withdrawn or moved to another record first, so no loan or hold loses
    /// its title.
    pub async fn delete_record(
        &self,
        id: i64,
        expected_version: i64,
        ctx: &WriteCtx,
    ) -> Result<RecordWrite, StoreError> {
        let txn = self.begin_write().await?;
        lock_key(self, &txn, ctx).await?;
        if replay::<i64>(&txn, ctx).await?.is_some() {
            txn.rollback().await?;
            return Ok(RecordWrite::Deleted);
        }
        if let Some(refused) = refuse_unless_at(&txn, id, expected_version).await? {
            txn.rollback().await?;
            return Ok(refused);
        }
        let items = txn
            .query_one(
                &Query::select()
                    .expr(Expr::col(Asterisk).count())
                    .from("items")
                    .and_where(Expr::col("record_id").eq(id))
                    .to_owned(),
            )
            .await?
            .map(|r| col::<i64, _>(&r, 0))
            .transpose()?
            .unwrap_or(0);
        if items > 0 {
            txn.rollback().await?;
            return Ok(RecordWrite::HasItems(items));
        }
        let before = match summary_in(&txn, id).await {
            Err(StoreError::Corrupt(_)) => None,
            other => other?,
        };
        txn.execute(
            &Query::delete()
                .from_table("records")
                .and_where(Expr::col("id").eq(id))
                .to_owned(),
        )
        .await?;
        write_outbox(&txn, &[id], OUTBOX_DELETE, ctx.now).await?;
        let audit = vec![AuditEntry::new(
            "record.delete",
            "record",
            id,
            before.as_ref(),
            None::<&()>,
        )];
        record(&txn, ctx, audit, &id).await?;
        txn.commit().await?;
        Ok(RecordWrite::Deleted)
    }

    /// Sets an item's status, with its record's outbox row (availability is
    /// searchable) and audit entry, in one transaction. `None` when no item
    /// has this id.
    pub async fn set_item_status(
        &self,
        item_id: i64,
        status: &str,
        ctx: &WriteCtx,
    ) -> Result<Option<StoredItem>, StoreError> {
        let txn = self.begin_write().await?;
        lock_key(self, &txn, ctx).await?;
        if replay::<i64>(&txn, ctx).await?.is_some() {
            let item = item_in(&txn, Expr::col("id").eq(item_id)).await?;
            txn.rollback().await?;
            return Ok(item);
        }
        let Some(before) = item_in(&txn, Expr::col("id").eq(item_id)).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        let row = txn
            .query_one(
                &Query::update()
                    .table("items")
                    .value("status", status)
                    .value("updated_at", ctx.now)
                    .value("version", Expr::col("version").add(1))
                    .and_where(Expr::col("id").eq(item_id))
                    .returning(Query::returning().columns(ITEM_COLUMNS))
                    .to_owned(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("item {item_id} vanished")))?;
        let item = row_to_item(&row)?;
        write_outbox(&txn, &[item.record_id], OUTBOX_STATUS, ctx.now).await?;
        let audit = vec![AuditEntry::new(
            "item.status",
            "item",
            item.id,
            Some(&before),
            Some(&item),
        )];
        record(&txn, ctx, audit, &item.id).await?;
        txn.commit().await?;
        Ok(Some(item))
    }

    /// Row counts of the catalogue tables.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let mut c = Counts::default();
        for (table, slot) in [
            ("records", &mut c.records),
            ("items", &mut c.items),
            ("catalogue_outbox", &mut c.outbox),
        ] {
            let row = self
                .db
                .query_one(
                    &Query::select()
                        .expr(Expr::col(Asterisk).count())
                        .from(table)
                        .to_owned(),
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("COUNT(*) on {table} gave no row")))?;
            *slot = col(&row, 0)?;
        }
        Ok(c)
    }

    /// Outbox rows after `after`, oldest first.
    pub async fn outbox_after(&self, after: i64, limit: u64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = self
            .db
            .query_all(
                &Query::select()
                    .columns(["id", "record_id", "op", "created_at"])
                    .from("catalogue_outbox")
                    .and_where(Expr::col("id").gt(after))
                    .order_by("id", sea_orm::sea_query::Order::Asc)
                    .limit(limit)
                    .to_owned(),
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: col(r, 0)?,
                    record_id: col(r, 1)?,
                    status_only: col::<String, _>(r, 2)? == OUTBOX_STATUS,
                    created_at: col(r, 3)?,
                })
            })
            .collect()
    }

    /// The newest outbox row: (id, created at), or None when empty.
    pub async fn outbox_head(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let row = self
            .db
            .query_one(
                &Query::select()
                    .columns(["id", "created_at"])
                    .from("catalogue_outbox")
                    .order_by("id", sea_orm::sea_query::Order::Desc)
                    .limit(1)
                    .to_owned(),
            )
            .await?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    /// The configured campus codes.
    pub async fn campus_codes(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .query_all(&Query::select().column("code").from("campuses").to_owned())
            .await?;
        rows.iter().map(|r| col(r, 0)).collect()
    }
}

/// One item, read inside a transaction.
pub(crate) async fn item_in(
    txn: &Txn,
    condition: SimpleExpr,
) -> Result<Option<StoredItem>, StoreError> {
    txn.query_one(
        &Query::select()
            .columns(ITEM_COLUMNS)
            .from("items")
            .and_where(condition)
            .to_owned(),
    )
    .await?
    .as_ref()
    .map(row_to_item)
    .transpose()
}

/// A record's summary (no MARC), read inside a transaction: the audit
/// entry's before and after.
async fn summary_in(txn: &Txn, id: i64) -> Result<Option<RecordRow>, StoreError> {
    txn.query_one(
        &Query::select()
            .columns(SUMMARY_COLUMNS.iter().copied())
            .from("records")
            .and_where(Expr::col("id").eq(id))
            .to_owned(),
    )
    .await?
    .as_ref()
    .map(row_to_summary)
    .transpose()
}

/// Why a change to record `id` must not go ahead (it is gone, or no longer
/// at the version the editor read), read inside the write transaction;
/// `None` when it may.
async fn refuse_unless_at(
    txn: &Txn,
    id: i64,
    expected_version: i64,
) -> Result<Option<RecordWrite>, StoreError> {
    let version: Option<i64> = txn
        .query_one(
            &Query::select()
                .column("version")
                .from("records")
                .and_where(Expr::col("id").eq(id))
                .to_owned(),
        )
        .await?
        .map(|r| col(&r, 0))
        .transpose()?;
    Ok(match version {
        None => Some(RecordWrite::NotFound),
        Some(v) if v != expected_version => Some(RecordWrite::Stale { current: v }),
        Some(_) => None,
    })
}

/// Overwrites a record's columns with prepared values (all but id,
/// created_at and version; the version is bumped), optionally only at the
/// version given.
async fn update_record_row(
    txn: &Txn,
    id: i64,
    row: Vec<Value>,
    now: i64,
    at_version: Option<i64>,
) -> Result<(), StoreError> {
    let mut values = Vec::with_capacity(RECORD_COLUMNS.len());
    full_row(id, row, now, &mut values);
    let mut update = Query::update();
    update.table("records");
    for (name, value) in RECORD_COLUMNS.iter().zip(values).skip(1) {
        if !matches!(*name, "created_at" | "version") {
            update.value(*name, value);
        }
    }
    update
        .value("version", Expr::col("version").add(1))
        .and_where(Expr::col("id").eq(id));
    if let Some(v) = at_version {
        update.and_where(Expr::col("version").eq(v));
    }
    txn.execute(&update).await?;
    Ok(())
}

/// An outbox row's `op` for a change to a record or its items (added,
/// edited, an item added or moved): the index replaces the record's document.
pub(crate) const OUTBOX_RECORD: &str = "upsert";
/// An outbox row's `op` for a record deleted.
pub(crate) const OUTBOX_DELETE: &str = "delete";
/// An outbox row's `op` for an item's status change and nothing else
/// (circulation): only the record's availability changed.
pub(crate) const OUTBOX_STATUS: &str = "status";

/// A change for the search index to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Its position.
    pub id: i64,
    /// The record changed.
    pub record_id: i64,
    /// Only an item's status changed: the record's availability, not its text.
    pub status_only: bool,
    /// When, in ms since the epoch.
    pub created_at: i64,
}

/// One outbox row per record, in the caller's transaction.
pub(crate) async fn write_outbox(
    txn: &Txn,
    record_ids: &[i64],
    op: &str,
    now: i64,
) -> Result<(), StoreError> {
    for insert in outbox_inserts(record_ids, op, now) {
        txn.execute(&insert).await?;
    }
    Ok(())
}

/// The INSERTs of [`write_outbox`], for a caller that sends them itself.
pub(crate) fn outbox_inserts<'a>(
    record_ids: &'a [i64],
    op: &'a str,
    now: i64,
) -> impl Iterator<Item = sea_orm::sea_query::InsertStatement> + 'a {
    record_ids.chunks(ROWS_PER_INSERT).map(move |chunk| {
        let mut insert = Query::insert();
        insert
            .into_table("catalogue_outbox")
            .columns(["record_id", "op", "created_at"]);
        for id in chunk {
            insert.values_panic([(*id).into(), op.into(), now.into()]);
        }
        insert
    })
}

pub(crate) fn item_values(record_id: i64, item: &ItemSpec, now: i64) -> Vec<SimpleExpr> {
    vec![
        record_id.into(),
        item.barcode.as_str().into(),
        item.call_number.clone().into(),
        item.campus.as_str().into(),
        item.location.as_ref().map(|l| l.as_str().to_owned()).into(),
        item.item_type.as_str().into(),
        item.status.code().into(),
        1i64.into(),
        now.into(),
        now.into(),
    ]
}

async fn upsert_named(
    txn: &Txn,
    table: &'static str,
    keys: &[(&'static str, &String)],
    ja: &str,
    en: &str,
) -> Result<(), StoreError> {
    let mut insert = Query::insert();
    insert
        .into_table(table)
        .columns(keys.iter().map(|k| k.0).chain(["name_ja", "name_en"]));
    let values: Vec<SimpleExpr> = keys
        .iter()
        .map(|k| k.1.as_str().into())
        .chain([ja.into(), en.into()])
        .collect();
    insert.values_panic(values).on_conflict(
        OnConflict::columns(keys.iter().map(|k| k.0))
            .update_columns(["name_ja", "name_en"])
            .to_owned(),
    );
    txn.execute(&insert).await?;
    Ok(())
}

/// `INSERT INTO records (…) VALUES (…), …` for `rows` rows, in the engine's dialect.
fn insert_records_sql(backend: DbBackend, rows: usize) -> String {
    let mut insert = Query::insert();
    insert.into_table("records").columns(RECORD_COLUMNS);
    for _ in 0..rows {
        insert.values_panic(RECORD_COLUMNS.map(|_| SimpleExpr::from(Value::BigInt(None))));
    }
    backend.build(&insert).sql
}

/// Creates the items of the records just written, or refreshes an item that
/// already belongs to the same record; a barcode held by another record is a
/// warning, never a silent move.
async fn write_items(
    txn: &Txn,
    touched: &[(i64, &ImportRecord)],
    now: i64,
    outcome: &mut BatchOutcome,
) -> Result<(), StoreError> {
    let barcodes: Vec<String> = touched
        .iter()
        .flat_map(|(_, r)| r.items.iter().map(|i| i.barcode.as_str().to_owned()))
        .collect();
    if barcodes.is_empty() {
        return Ok(());
    }
    let mut owner: HashMap<String, i64> = HashMap::new();
    for chunk in barcodes.chunks(ROWS_PER_INSERT * 2) {
        let rows = txn
            .query_all(
                &Query::select()
                    .columns(["barcode", "record_id"])
                    .from("items")
                    .and_where(Expr::col("barcode").is_in(chunk.iter().cloned()))
                    .to_owned(),
            )
            .await?;
        for row in rows {
            owner.insert(col(&row, 0)?, col(&row, 1)?);
        }
    }
    let mut inserts: Vec<Vec<SimpleExpr>> = Vec::new();
    for (id, r) in touched {
        for item in &r.items {
            let code = item.barcode.as_str();
            match owner.get(code) {
                Some(o) if o == id => {
                    txn.execute(
                        &Query::update()
                            .table("items")
                            .value("call_number", item.call_number.clone())
                            .value("campus_code", item.campus.as_str())
                            .value(
                                "location_code",
                                item.location.as_ref().map(|l| l.as_str().to_owned()),
                            )
                            .value("item_type", item.item_type.as_str())
                            .value("updated_at", now)
                            .value("version", Expr::col("version").add(1))
                            .and_where(Expr::col("barcode").eq(code))
                            .to_owned(),
                    )
                    .await?;
                    outcome.items_updated += 1;
                }
                Some(o) => outcome.warnings.push(ItemWarning {
                    number: r.number,
                    reason: format!(
                        "item {code}: barcode already belongs to record {o}; not moved"
                    ),
                }),
                None => {
                    owner.insert(code.to_owned(), *id);
                    inserts.push(item_values(*id, item, now));
                    outcome.items_created += 1;
                }
            }
        }
    }
    for chunk in inserts.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::insert();
        insert.into_table("items").columns(
            ITEM_COLUMNS
                .iter()
                .skip(1)
                .copied()
                .chain(["created_at", "updated_at"]),
        );
        for values in chunk {
            insert.values_panic(values.clone());
        }
        txn.execute(&insert).await?;
    }
    Ok(())
}
