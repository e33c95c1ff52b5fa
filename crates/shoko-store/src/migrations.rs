//! Versioned schema migrations, applied in order on start. A migration runs
//! against the data of the previous release and never edits an earlier one.

use sea_orm_migration::async_trait;
use sea_orm_migration::prelude::*;

/// Every migration Shoko has, oldest first.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Catalogue)]
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
