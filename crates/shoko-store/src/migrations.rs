//! Versioned schema migrations, applied in order on start. A migration runs
//! against the data of the previous release and never edits an earlier one.

use sea_orm_migration::async_trait;
use sea_orm_migration::prelude::*;

/// Every migration Shoko has, oldest first.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Catalogue),
            Box::new(M0002Circulation),
            Box::new(M0003Jobs),
            Box::new(M0004StorageSamples),
            Box::new(M0005Acquisitions),
        ]
    }
}

/// Campuses, locations, item types, bibliographic records, items, the
/// catalogue outbox, import runs and id counters.
struct M0001Catalogue;

impl MigrationName for M0001Catalogue {
    fn name(&self) -> &str {
        "m0001_catalogue"
    }
}

fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}

fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}

fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

fn big_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Catalogue {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("counters")
                .col(text("name").primary_key())
                .col(big("value"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("campuses")
                .col(text("code").primary_key())
                .col(text("name_ja"))
                .col(text("name_en"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("locations")
                .col(text("campus_code"))
                .col(text("code"))
                .col(text("name_ja"))
                .col(text("name_en"))
                .primary_key(Index::create().col("campus_code").col("code"))
                .foreign_key(
                    ForeignKey::create()
                        .from("locations", "campus_code")
                        .to("campuses", "code"),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("item_types")
                .col(text("code").primary_key())
                .col(text("name_ja"))
                .col(text("name_en"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("records")
                .col(big("id").primary_key())
                .col(text_null("match_control"))
                .col(text_null("match_system"))
                .col(text_null("control_number"))
                .col(text("title"))
                .col(text("title_reading"))
                .col(text("authors"))
                .col(text("subjects"))
                .col(text("isbns"))
                .col(text("issns"))
                .col(text_null("publisher"))
                .col(ColumnDef::new("year").integer().null())
                .col(text_null("language"))
                .col(text("format"))
                .col(ColumnDef::new("marc").blob().not_null())
                .col(big("created_at"))
                .col(big("updated_at"))
                .col(big("version"))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("records_match_control", "match_control"),
            ("records_match_system", "match_system"),
            ("records_control_number", "control_number"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table("records")
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("items")
                .col(big("id").auto_increment().primary_key())
                .col(big("record_id"))
                .col(text("barcode").unique_key())
                .col(text_null("call_number"))
                .col(text("campus_code"))
                .col(text_null("location_code"))
                .col(text("item_type"))
                .col(text("status"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .col(big("version"))
                .foreign_key(
                    ForeignKey::create()
                        .from("items", "record_id")
                        .to("records", "id"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("items", "campus_code")
                        .to("campuses", "code"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("items", "item_type")
                        .to("item_types", "code"),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("items_record")
                .table("items")
                .col("record_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("catalogue_outbox")
                .col(big("id").auto_increment().primary_key())
                .col(big("record_id"))
                .col(text("op"))
                .col(big("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("import_runs")
                .col(big("id").auto_increment().primary_key())
                .col(text("files"))
                .col(text("status"))
                .col(big("started_at"))
                .col(big_null("finished_at"))
                .col(big("records_committed"))
                .col(big("imported"))
                .col(big("updated"))
                .col(big("rejected"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "import_runs",
            "catalogue_outbox",
            "items",
            "records",
            "item_types",
            "locations",
            "campuses",
            "counters",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

/// Patrons, loans, holds and requests, transits, fines and their payments,
/// staff accounts, sessions, the audit log and idempotency keys.
struct M0002Circulation;

impl MigrationName for M0002Circulation {
    fn name(&self) -> &str {
        "m0002_circulation"
    }
}

fn flag(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().to_owned()
}

fn id_col() -> ColumnDef {
    big("id").auto_increment().primary_key().to_owned()
}

fn fk(
    from: &'static str,
    col: &'static str,
    to: &'static str,
    to_col: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from, col)
        .to(to, to_col)
        .to_owned()
}

async fn index(
    m: &SchemaManager<'_>,
    table: &'static str,
    name: &'static str,
    cols: &[&'static str],
) -> Result<(), DbErr> {
    let mut i = Index::create();
    i.name(name).table(table);
    for c in cols {
        i.col(*c);
    }
    m.create_index(i.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Circulation {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("patrons")
                .col(id_col())
                .col(text("barcode").unique_key())
                .col(text("name"))
                .col(text("name_reading"))
                .col(text("category"))
                .col(text("home_campus"))
                .col(text_null("email"))
                .col(text_null("phone"))
                .col(text("language"))
                .col(text_null("expires_on"))
                .col(text_null("manual_block"))
                .col(flag("keep_history"))
                // Counters kept by every loan and fine, so that a checkout's
                // cost does not grow with the patron's history.
                .col(big("open_loans"))
                .col(big("fines_owed"))
                .col(text_null("password_hash"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .col(big("version"))
                .foreign_key(&mut fk("patrons", "home_campus", "campuses", "code"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("loans")
                .col(id_col())
                .col(big("item_id"))
                .col(big("record_id"))
                // NULL once an anonymised loan is returned.
                .col(big_null("patron_id"))
                // Set while the loan is open, NULL after: the unique index
                // allows one open loan per item, and the patron index finds
                // a patron's open loans and earliest due date directly.
                .col(big_null("open_item_id").unique_key())
                .col(big_null("open_patron_id"))
                .col(text("campus"))
                .col(big("checked_out_at"))
                .col(big("due_at"))
                .col(big("renewals"))
                .col(big("renewals_allowed"))
                .col(big("fine_per_day"))
                .col(big("max_fine"))
                .col(big_null("recalled_at"))
                .col(big_null("returned_at"))
                .col(text_null("returned_campus"))
                .foreign_key(&mut fk("loans", "item_id", "items", "id"))
                .foreign_key(&mut fk("loans", "patron_id", "patrons", "id"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "loans",
            "loans_open_patron_due",
            &["open_patron_id", "due_at"],
        )
        .await?;
        index(m, "loans", "loans_patron", &["patron_id", "id"]).await?;
        index(
            m,
            "loans",
            "loans_record_open",
            &["record_id", "open_item_id"],
        )
        .await?;
        m.create_table(
            Table::create()
                .table("holds")
                .col(id_col())
                // `hold` (a title or a copy) or `request` (delivery of a
                // copy from another campus).
                .col(text("kind"))
                .col(big("record_id"))
                .col(big_null("item_id"))
                .col(big("patron_id"))
                .col(text("pickup_campus"))
                .col(text("status"))
                .col(big("placed_at"))
                .col(big_null("shelf_expires_at"))
                .col(big("updated_at"))
                .foreign_key(&mut fk("holds", "record_id", "records", "id"))
                .foreign_key(&mut fk("holds", "item_id", "items", "id"))
                .foreign_key(&mut fk("holds", "patron_id", "patrons", "id"))
                .to_owned(),
        )
        .await?;
        index(m, "holds", "holds_queue", &["record_id", "status", "id"]).await?;
        index(m, "holds", "holds_patron", &["patron_id", "status"]).await?;
        index(m, "holds", "holds_item", &["item_id", "status"]).await?;
        m.create_table(
            Table::create()
                .table("transits")
                .col(id_col())
                .col(big("item_id"))
                .col(big_null("open_item_id").unique_key())
                .col(text("from_campus"))
                .col(text("to_campus"))
                .col(text("reason"))
                .col(big_null("hold_id"))
                .col(big("sent_at"))
                .col(big_null("arrived_at"))
                .foreign_key(&mut fk("transits", "item_id", "items", "id"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "transits",
            "transits_to_open",
            &["to_campus", "arrived_at"],
        )
        .await?;
        m.create_table(
            Table::create()
                .table("fines")
                .col(id_col())
                .col(big("patron_id"))
                .col(big_null("item_id"))
                .col(text("kind"))
                .col(big("amount"))
                .col(big("paid"))
                .col(big("waived"))
                .col(text_null("note"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .foreign_key(&mut fk("fines", "patron_id", "patrons", "id"))
                .to_owned(),
        )
        .await?;
        index(m, "fines", "fines_patron", &["patron_id", "id"]).await?;
        m.create_table(
            Table::create()
                .table("fine_payments")
                .col(id_col())
                .col(big("fine_id"))
                .col(text("kind"))
                .col(big("amount"))
                .col(text("actor"))
                .col(big("at"))
                .foreign_key(&mut fk("fine_payments", "fine_id", "fines", "id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("staff_users")
                .col(id_col())
                .col(text("username").unique_key())
                .col(text("display_name"))
                .col(text("role"))
                .col(text("password_hash"))
                .col(flag("active"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .col(big("version"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sessions")
                .col(text("token_hash").primary_key())
                .col(text("kind"))
                .col(big("subject_id"))
                .col(text("csrf"))
                .col(big("created_at"))
                .col(big("expires_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("audit_log")
                .col(id_col())
                .col(big("at"))
                .col(text("actor"))
                .col(text("action"))
                .col(text("entity"))
                .col(text("entity_id"))
                .col(text_null("before"))
                .col(text_null("after"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "audit_log",
            "audit_entity",
            &["entity", "entity_id", "id"],
        )
        .await?;
        m.create_table(
            Table::create()
                .table("idempotency_keys")
                .col(text("actor"))
                .col(text("key"))
                .col(text("fingerprint"))
                .col(text("response"))
                .col(big("created_at"))
                .primary_key(Index::create().col("actor").col("key"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idempotency_keys",
            "idempotency_created",
            &["created_at"],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "idempotency_keys",
            "audit_log",
            "sessions",
            "staff_users",
            "fine_payments",
            "fines",
            "transits",
            "holds",
            "loans",
            "patrons",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

/// Job runs and notices.
struct M0003Jobs;

impl MigrationName for M0003Jobs {
    fn name(&self) -> &str {
        "m0003_jobs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Jobs {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("job_runs")
                .col(id_col())
                .col(text("job"))
                // The scheduled time the run is for (Unix ms); a run by hand
                // is for the time it was asked.
                .col(big("slot"))
                .col(big("attempt"))
                .col(text("trigger"))
                // The process running it (pid), to tell a run still going
                // from one whose process died.
                .col(text("owner"))
                // running, succeeded, failed, interrupted
                .col(text("status"))
                .col(big("started_at"))
                .col(big_null("finished_at"))
                .col(text("counts"))
                .col(text("outputs"))
                .col(text_null("error"))
                .to_owned(),
        )
        .await?;
        index(m, "job_runs", "job_runs_job_slot", &["job", "slot", "id"]).await?;
        m.create_table(
            Table::create()
                .table("notices")
                .col(id_col())
                // courtesy, overdue1, overdue2, overdue3, hold_available, recall, fine
                .col(text("kind"))
                // What the notice is about and at which state (a loan at its
                // due date, a hold at its shelf expiry): a notice is made once.
                .col(text("subject_key").unique_key())
                .col(big("patron_id"))
                // email or print
                .col(text("channel"))
                .col(text_null("to_address"))
                .col(text("language"))
                .col(text("subject"))
                .col(text("body"))
                // pending, sending (handed to the SMTP server, answer not yet
                // noted), sent, printed, uncertain (the process died while
                // sending: the server may or may not have it)
                .col(text("status"))
                .col(big("attempts"))
                .col(text_null("last_error"))
                .col(big("created_at"))
                .col(big_null("sent_at"))
                .col(big_null("run_id"))
                .foreign_key(&mut fk("notices", "patron_id", "patrons", "id"))
                .to_owned(),
        )
        .await?;
        index(m, "notices", "notices_status", &["status", "channel", "id"]).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["notices", "job_runs"] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

/// Storage samples for the capacity forecast.
struct M0004StorageSamples;

impl MigrationName for M0004StorageSamples {
    fn name(&self) -> &str {
        "m0004_storage_samples"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004StorageSamples {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("storage_samples")
                .col(id_col())
                .col(big("taken_at"))
                // disk_free, database, index, table:NAME, tablespace:NAME,
                // quota_free
                .col(text("series"))
                .col(big("bytes"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "storage_samples",
            "storage_samples_series_time",
            &["series", "taken_at"],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("storage_samples").to_owned())
            .await?;
        Ok(())
    }
}

/// Acquisitions: vendors, funds and their ledger, order lines, invoices.
struct M0005Acquisitions;

impl MigrationName for M0005Acquisitions {
    fn name(&self) -> &str {
        "m0005_acquisitions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005Acquisitions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("vendors")
                .col(id_col())
                .col(text("code").unique_key())
                .col(text("name"))
                .col(text_null("contact"))
                .col(text_null("email"))
                // ISO 4217; amounts in its minor units
                .col(text("currency"))
                // basis points (1000 = 10 %)
                .col(big("discount_bp"))
                .col(big("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("funds")
                .col(id_col())
                // the year the fiscal year starts in (April 2026 – March 2027 = 2026)
                .col(big("fiscal_year"))
                .col(text("code"))
                .col(text("name"))
                .col(big_null("parent_id"))
                .col(flag("allow_overspend"))
                .col(flag("closed"))
                // yen: allocated = available + encumbered + expended
                .col(big("allocated"))
                .col(big("encumbered"))
                .col(big("expended"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .foreign_key(&mut fk("funds", "parent_id", "funds", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("funds_year_code")
                .table("funds")
                .col("fiscal_year")
                .col("code")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("order_lines")
                .col(id_col())
                .col(big("vendor_id"))
                .col(big("record_id"))
                .col(big("fund_id"))
                .col(big("quantity"))
                .col(big("received"))
                .col(big("invoiced"))
                // in the vendor's currency, minor units
                .col(big("unit_price"))
                .col(text("currency"))
                // yen still promised on the fund for this line
                .col(big("encumbered"))
                .col(text("campus"))
                .col(text_null("location"))
                .col(text("item_type"))
                // draft, sent, partly_received, received, closed, cancelled
                .col(text("status"))
                .col(text_null("note"))
                .col(big("created_at"))
                .col(big("updated_at"))
                .foreign_key(&mut fk("order_lines", "vendor_id", "vendors", "id"))
                .foreign_key(&mut fk("order_lines", "record_id", "records", "id"))
                .foreign_key(&mut fk("order_lines", "fund_id", "funds", "id"))
                .to_owned(),
        )
        .await?;
        index(m, "order_lines", "order_lines_status", &["status", "id"]).await?;
        m.create_table(
            Table::create()
                .table("invoices")
                .col(id_col())
                .col(big("vendor_id"))
                .col(text("number"))
                .col(text("currency"))
                // library minor units per foreign major unit × 10^6
                .col(big("rate_micros"))
                .col(big("shipping"))
                .col(big("net"))
                .col(big("tax"))
                .col(big("total"))
                .col(big("total_yen"))
                // open, paid
                .col(text("status"))
                .col(big("created_at"))
                .col(big_null("paid_at"))
                .foreign_key(&mut fk("invoices", "vendor_id", "vendors", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("invoices_vendor_number")
                .table("invoices")
                .col("vendor_id")
                .col("number")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("invoice_lines")
                .col(id_col())
                .col(big("invoice_id"))
                .col(big("order_line_id"))
                .col(big("quantity"))
                .col(big("gross"))
                .col(big("discount"))
                .col(big("tax_bp"))
                // what the line costs the fund, in yen, tax and its share of
                // shipping included; the lines sum to the invoice's total_yen
                .col(big("amount_yen"))
                .foreign_key(&mut fk("invoice_lines", "invoice_id", "invoices", "id"))
                .foreign_key(&mut fk(
                    "invoice_lines",
                    "order_line_id",
                    "order_lines",
                    "id",
                ))
                .to_owned(),
        )
        .await?;
        index(m, "invoice_lines", "invoice_lines_invoice", &["invoice_id"]).await?;
        m.create_table(
            Table::create()
                .table("fund_ledger")
                .col(id_col())
                .col(big("fund_id"))
                // allocation, transfer_in, transfer_out, encumbrance, release,
                // expenditure, rollover_in, rollover_out
                .col(text("kind"))
                .col(big("amount"))
                .col(big_null("order_line_id"))
                .col(big_null("invoice_id"))
                .col(text("actor"))
                .col(big("at"))
                .foreign_key(&mut fk("fund_ledger", "fund_id", "funds", "id"))
                .to_owned(),
        )
        .await?;
        index(m, "fund_ledger", "fund_ledger_fund", &["fund_id", "id"]).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "fund_ledger",
            "invoice_lines",
            "invoices",
            "order_lines",
            "funds",
            "vendors",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
