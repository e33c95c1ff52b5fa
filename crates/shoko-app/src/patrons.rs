//! Patrons and staff accounts: creating and changing them (one at a time or
//! by CSV load), their privacy setting and passwords.

use std::io::Read;

use serde::{Deserialize, Serialize};
use shoko_domain::{Actor, Barcode, CampusCode, PatronCategoryCode, Permission, Role, Username};
use shoko_store::{PatronFields, PatronRow, StaffRow};

use crate::App;
use crate::auth::hash_password;
use crate::circulation::{Caller, CircError};

/// A patron as staff or a load give it, before checking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatronInput {
    /// Card barcode.
    pub barcode: String,
    /// Name.
    pub name: String,
    /// Reading of the name (kana); the name itself when omitted.
    #[serde(default)]
    pub name_reading: Option<String>,
    /// Category code.
    pub category: String,
    /// Home campus code.
    pub home_campus: String,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Telephone.
    #[serde(default)]
    pub phone: Option<String>,
    /// `ja` (default) or `en`.
    #[serde(default)]
    pub language: Option<String>,
    /// Last valid date, YYYY-MM-DD.
    #[serde(default)]
    pub expires_on: Option<String>,
    /// Manual block note.
    #[serde(default)]
    pub manual_block: Option<String>,
    /// Keep loan history (opt-in).
    #[serde(default)]
    pub keep_history: bool,
}

/// What a patron may change about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatronPreferences {
    /// Keep loan history.
    pub keep_history: Option<bool>,
    /// E-mail.
    pub email: Option<String>,
    /// `ja` or `en`.
    pub language: Option<String>,
}

/// A row of a patron load that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// Line in the file (1 is the header).
    pub line: u64,
    /// What was wrong, naming the field.
    pub reason: String,
}

/// What a patron load did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PatronLoad {
    /// New patrons.
    pub created: u64,
    /// Existing patrons (same barcode) updated.
    pub updated: u64,
    /// Refused rows.
    pub rejected: Vec<RejectedRow>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> CircError {
    CircError::Invalid {
        field,
        message: message.into(),
    }
}

fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn language(v: Option<String>) -> Result<String, CircError> {
    match blank_to_none(v).as_deref() {
        None | Some("ja") => Ok("ja".into()),
        Some("en") => Ok("en".into()),
        Some(other) => Err(invalid(
            "language",
            format!("{other:?} is neither ja nor en"),
        )),
    }
}

impl App {
    /// Checks a patron's input against the configuration.
    pub fn patron_fields(&self, p: PatronInput) -> Result<PatronFields, CircError> {
        let barcode = Barcode::parse(&p.barcode).map_err(|e| invalid("barcode", e.to_string()))?;
        let name = p.name.trim().to_owned();
        if name.is_empty() {
            return Err(invalid("name", "is empty"));
        }
        let category = PatronCategoryCode::parse(&p.category)
            .map_err(|e| invalid("category", e.to_string()))?;
        if !self.circulation.has_category(&category) {
            return Err(invalid(
                "category",
                format!("unknown patron category {category}"),
            ));
        }
        let campus =
            CampusCode::parse(&p.home_campus).map_err(|e| invalid("home_campus", e.to_string()))?;
        if !self.settings.campuses.iter().any(|c| c.code == campus) {
            return Err(invalid("home_campus", format!("unknown campus {campus}")));
        }
        let email = blank_to_none(p.email);
        if let Some(e) = &email
            && !e.contains('@')
        {
            return Err(invalid("email", format!("{e:?} is not an e-mail address")));
        }
        let expires_on = blank_to_none(p.expires_on);
        if let Some(d) = &expires_on {
            d.parse::<chrono::NaiveDate>()
                .map_err(|_| invalid("expires_on", format!("{d:?} is not a date (YYYY-MM-DD)")))?;
        }
        Ok(PatronFields {
            barcode: barcode.to_string(),
            name_reading: blank_to_none(p.name_reading).unwrap_or_else(|| name.clone()),
            name,
            category: category.to_string(),
            home_campus: campus.to_string(),
            email,
            phone: blank_to_none(p.phone),
            language: language(p.language)?,
            expires_on,
            manual_block: blank_to_none(p.manual_block),
            keep_history: p.keep_history,
        })
    }

    /// Registers a patron.
    pub async fn create_patron(
        &self,
        caller: &Caller,
        input: PatronInput,
        password: Option<&str>,
    ) -> Result<PatronRow, CircError> {
        caller.actor.require(Permission::PatronWrite)?;
        let fields = self.patron_fields(input)?;
        let hash = password.map(hash_password).transpose()?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<PatronRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let p = tx
                .insert_patron(&fields, hash.as_deref())
                .await?
                .ok_or_else(|| CircError::Taken(format!("patron barcode {}", fields.barcode)))?;
            tx.audit("patron.create", "patron", p.id, None::<&()>, Some(&p));
            Ok(p)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Replaces a patron's fields (staff), at the version read.
    pub async fn update_patron(
        &self,
        caller: &Caller,
        id: i64,
        version: i64,
        input: PatronInput,
    ) -> Result<PatronRow, CircError> {
        caller.actor.require(Permission::PatronWrite)?;
        let fields = self.patron_fields(input)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<PatronRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let before = tx
                .patron(id)
                .await?
                .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
            if before.version != version {
                return Err(CircError::Invalid {
                    field: "version",
                    message: format!(
                        "the patron changed since it was read (now version {})",
                        before.version
                    ),
                });
            }
            if before.barcode != fields.barcode
                && tx.patron_by_barcode(&fields.barcode).await?.is_some()
            {
                return Err(CircError::Taken(format!(
                    "patron barcode {}",
                    fields.barcode
                )));
            }
            tx.update_patron(id, &fields).await?;
            let after = tx
                .patron(id)
                .await?
                .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
            tx.audit("patron.update", "patron", id, Some(&before), Some(&after));
            Ok(after)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Changes what a patron may change about themselves: the loan-history
    /// opt-in, e-mail and language. Turning history off does not reach back:
    /// returned loans already kept stay until staff purge them.
    pub async fn set_preferences(
        &self,
        caller: &Caller,
        id: i64,
        prefs: PatronPreferences,
    ) -> Result<PatronRow, CircError> {
        caller.actor.require_self_or(id, Permission::PatronWrite)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<PatronRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let before = tx
                .patron(id)
                .await?
                .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
            let mut fields = PatronFields {
                barcode: before.barcode.clone(),
                name: before.name.clone(),
                name_reading: before.name_reading.clone(),
                category: before.category.clone(),
                home_campus: before.home_campus.clone(),
                email: before.email.clone(),
                phone: before.phone.clone(),
                language: before.language.clone(),
                expires_on: before.expires_on.clone(),
                manual_block: before.manual_block.clone(),
                keep_history: before.keep_history,
            };
            if let Some(k) = prefs.keep_history {
                fields.keep_history = k;
            }
            if let Some(e) = prefs.email {
                let e = blank_to_none(Some(e));
                if let Some(v) = &e
                    && !v.contains('@')
                {
                    return Err(invalid("email", format!("{v:?} is not an e-mail address")));
                }
                fields.email = e;
            }
            if prefs.language.is_some() {
                fields.language = language(prefs.language)?;
            }
            tx.update_patron(id, &fields).await?;
            let after = tx
                .patron(id)
                .await?
                .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
            tx.audit(
                "patron.preferences",
                "patron",
                id,
                Some(&before),
                Some(&after),
            );
            Ok(after)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Sets a patron's password (staff, or the patron themselves).
    pub async fn set_patron_password(
        &self,
        caller: &Caller,
        id: i64,
        password: &str,
    ) -> Result<(), CircError> {
        caller.actor.require_self_or(id, Permission::PatronWrite)?;
        let hash = hash_password(password)?;
        let mut tx = self.begin(caller).await?;
        let outcome = async {
            tx.patron(id)
                .await?
                .ok_or_else(|| CircError::NoPatron(id.to_string()))?;
            tx.set_patron_password(id, &hash).await?;
            tx.audit("patron.password", "patron", id, None::<&()>, None::<&()>);
            Ok(())
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Patrons whose barcode, name or reading starts with the text.
    pub async fn find_patrons(
        &self,
        caller: &Caller,
        q: &str,
    ) -> Result<Vec<PatronRow>, CircError> {
        caller.actor.require(Permission::StaffRead)?;
        Ok(self.store.find_patrons(q.trim(), 50).await?)
    }

    /// Loads patrons from CSV with a header row (`barcode,name,name_reading,
    /// category,home_campus,email,phone,language,expires_on`): new barcodes
    /// are created, known ones updated; a bad row is reported with its line
    /// and field, and the good rows are loaded. Rows commit 500 at a time.
    pub async fn load_patrons(
        &self,
        caller: &Caller,
        input: impl Read,
    ) -> Result<PatronLoad, CircError> {
        caller.actor.require(Permission::PatronWrite)?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(input);
        let mut load = PatronLoad::default();
        let mut batch: Vec<(u64, PatronFields)> = Vec::new();
        for (i, row) in reader.deserialize::<PatronInput>().enumerate() {
            let line = i as u64 + 2;
            let checked = row
                .map_err(|e| e.to_string())
                .and_then(|p| self.patron_fields(p).map_err(|e| e.to_string()));
            match checked {
                Ok(f) => batch.push((line, f)),
                Err(reason) => load.rejected.push(RejectedRow { line, reason }),
            }
            if batch.len() == 500 {
                self.load_batch(caller, std::mem::take(&mut batch), &mut load)
                    .await?;
            }
        }
        self.load_batch(caller, batch, &mut load).await?;
        Ok(load)
    }

    async fn load_batch(
        &self,
        caller: &Caller,
        batch: Vec<(u64, PatronFields)>,
        load: &mut PatronLoad,
    ) -> Result<(), CircError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin(&Caller::new(caller.actor.clone())).await?;
        let mut seen = std::collections::HashSet::new();
        for (line, fields) in batch {
            if !seen.insert(fields.barcode.clone()) {
                load.rejected.push(RejectedRow {
                    line,
                    reason: format!("barcode: {} appears twice in the file", fields.barcode),
                });
                continue;
            }
            match tx.patron_by_barcode(&fields.barcode).await? {
                Some(before) => {
                    tx.update_patron(before.id, &fields).await?;
                    tx.audit(
                        "patron.load",
                        "patron",
                        before.id,
                        Some(&before),
                        Some(&fields),
                    );
                    load.updated += 1;
                }
                None => {
                    if let Some(p) = tx.insert_patron(&fields, None).await? {
                        tx.audit("patron.load", "patron", p.id, None::<&()>, Some(&p));
                        load.created += 1;
                    }
                }
            }
        }
        tx.finish(&()).await?;
        Ok(())
    }

    /// Creates a staff account.
    pub async fn add_staff(
        &self,
        caller: &Caller,
        username: &Username,
        display_name: &str,
        role: Role,
        password: &str,
    ) -> Result<StaffRow, CircError> {
        caller.actor.require(Permission::StaffAdmin)?;
        check_password(password)?;
        let hash = hash_password(password)?;
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<StaffRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let s = tx
                .insert_staff(username.as_str(), display_name, role.code(), &hash)
                .await?
                .ok_or_else(|| CircError::Taken(format!("user name {username}")))?;
            tx.audit("staff.create", "staff", s.id, None::<&()>, Some(&s));
            Ok(s)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Changes a staff account: name, role, active, and optionally its
    /// password (which ends its sessions, as does deactivating it).
    pub async fn update_staff(
        &self,
        caller: &Caller,
        username: &Username,
        display_name: Option<&str>,
        role: Option<Role>,
        active: Option<bool>,
        password: Option<&str>,
    ) -> Result<StaffRow, CircError> {
        caller.actor.require(Permission::StaffAdmin)?;
        let hash = match password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let mut tx = self.begin(caller).await?;
        if let Some(done) = tx.replay::<StaffRow>().await? {
            tx.abandon().await?;
            return Ok(done);
        }
        let outcome = async {
            let before = tx
                .staff_by_username(username.as_str())
                .await?
                .ok_or_else(|| invalid("username", format!("no staff account {username}")))?;
            let role = role.map_or(before.role.clone(), |r| r.code().to_owned());
            tx.update_staff(
                before.id,
                display_name.unwrap_or(&before.display_name),
                &role,
                active.unwrap_or(before.active),
                hash.as_deref(),
            )
            .await?;
            let after = tx
                .staff_by_username(username.as_str())
                .await?
                .ok_or_else(|| invalid("username", format!("no staff account {username}")))?;
            tx.audit(
                "staff.update",
                "staff",
                before.id,
                Some(&before),
                Some(&after),
            );
            Ok(after)
        }
        .await;
        self.end(tx, outcome).await
    }

    /// Every staff account.
    pub async fn staff_accounts(&self, caller: &Caller) -> Result<Vec<StaffRow>, CircError> {
        caller.actor.require(Permission::StaffAdmin)?;
        Ok(self.store.staff_users().await?)
    }

    /// The system actor, for commands run on the server.
    pub fn system() -> Caller {
        Caller::new(Actor::System)
    }
}

/// Passwords of at least 10 characters: long enough for a desk account
/// that login rate-limiting protects.
fn check_password(p: &str) -> Result<(), CircError> {
    if p.chars().count() < 10 {
        return Err(invalid("password", "must be at least 10 characters"));
    }
    Ok(())
}
