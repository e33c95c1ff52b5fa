//! PostgreSQL statements with their values written into the text, so that
//! several writes of one transaction go to the server in one simple query
//! (one round trip) instead of one prepared statement each.
//!
//! sqlx sends a statement with parameters through the extended protocol,
//! one statement and one wait for each; a text without parameters goes as a
//! simple query, which may hold several statements. The values are written
//! here as SQL literals, so this is where injection would happen if it were
//! wrong: strings are quoted the standard way (`'…'`, a quote doubled),
//! which is exact only while `standard_conforming_strings` is on, so
//! [`batch`] sets it for the transaction in the same text. Anything this
//! cannot write exactly (a value type it does not know, a NUL in a string,
//! a placeholder it cannot find) gives `None`, and the caller sends the
//! statements one by one as before.

use std::fmt::Write as _;

use sea_orm::sea_query::Value;
use sea_orm::{DbBackend, Statement};

/// The statements as one simple-query text, or `None` when one of them
/// cannot be written with its values inline.
pub(crate) fn batch(statements: &[Statement]) -> Option<String> {
    let mut sql = String::from("SET LOCAL standard_conforming_strings = on");
    for statement in statements {
        if statement.db_backend != DbBackend::Postgres {
            return None;
        }
        sql.push_str(";\n");
        sql.push_str(&inlined(statement)?);
    }
    Some(sql)
}

/// One statement with each `$n` replaced by its value as a literal.
fn inlined(statement: &Statement) -> Option<String> {
    let values: &[Value] = statement.values.as_ref().map_or(&[], |v| &v.0);
    let sql = &statement.sql;
    let mut out = String::with_capacity(sql.len() + 16 * values.len());
    let mut used = vec![false; values.len()];
    let mut chars = sql.char_indices().peekable();
    // Where the scan is: outside quotes, or inside '…' or "…".
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    while let Some((_, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'') => {
                // E'…' and U&'…' read backslashes and escapes: not ours.
                if matches!(previous, 'e' | 'E' | '&') {
                    return None;
                }
                quote = Some('\'');
            }
            (None, '"') => quote = Some('"'),
            // Comments could hide a placeholder from this scan.
            (None, '-') if chars.peek().is_some_and(|&(_, n)| n == '-') => return None,
            (None, '/') if chars.peek().is_some_and(|&(_, n)| n == '*') => return None,
            (None, '$') => {
                let mut number = 0usize;
                let mut digits = 0;
                while let Some(&(_, d)) = chars.peek() {
                    let Some(d) = d.to_digit(10) else { break };
                    number = number.checked_mul(10)?.checked_add(d as usize)?;
                    digits += 1;
                    chars.next();
                }
                // `$tag$` quoting, or a number out of range.
                if digits == 0 || number == 0 || number > values.len() {
                    return None;
                }
                used[number - 1] = true;
                literal(&values[number - 1], &mut out)?;
                previous = '0';
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
        previous = c;
    }
    (quote.is_none() && used.iter().all(|&u| u)).then_some(out)
}

/// Writes `value` as a PostgreSQL literal of its type.
fn literal(value: &Value, out: &mut String) -> Option<()> {
    match value {
        Value::Bool(v) => typed(v.map(|b| if b { "TRUE" } else { "FALSE" }), "bool", out),
        Value::TinyInt(v) => number(*v, "int2", out),
        Value::SmallInt(v) => number(*v, "int2", out),
        Value::Int(v) => number(*v, "int4", out),
        Value::BigInt(v) => number(*v, "int8", out),
        Value::TinyUnsigned(v) => number(*v, "int2", out),
        Value::SmallUnsigned(v) => number(*v, "int4", out),
        Value::Unsigned(v) => number(*v, "int8", out),
        Value::BigUnsigned(v) => number(*v, "int8", out),
        Value::Float(v) => float(v.map(f64::from), "float4", out),
        Value::Double(v) => float(*v, "float8", out),
        Value::String(v) => text(v.as_deref(), "text", out),
        Value::Char(v) => text(v.map(String::from).as_deref(), "text", out),
        Value::Json(v) => text(v.as_ref().map(|j| j.to_string()).as_deref(), "jsonb", out),
        Value::Bytes(v) => {
            let Some(bytes) = v else {
                return typed(None, "bytea", out);
            };
            out.push_str("'\\x");
            for b in bytes {
                write!(out, "{b:02x}").ok()?;
            }
            out.push_str("'::bytea");
            Some(())
        }
        _ => None,
    }
}

/// NULL of `ty`, or `sql` as it is.
fn typed(sql: Option<&str>, ty: &str, out: &mut String) -> Option<()> {
    match sql {
        Some(sql) => out.push_str(sql),
        None => write!(out, "NULL::{ty}").ok()?,
    }
    Some(())
}

fn number<N: std::fmt::Display>(v: Option<N>, ty: &str, out: &mut String) -> Option<()> {
    match v {
        // Parenthesised, so that a negative number after an operator
        // (`x - -1`) still reads as one value.
        Some(n) => write!(out, "({n})::{ty}").ok(),
        None => typed(None, ty, out),
    }
}

fn float(v: Option<f64>, ty: &str, out: &mut String) -> Option<()> {
    match v {
        // `{:?}` writes the shortest text that reads back as the same number.
        Some(f) if f.is_finite() => write!(out, "({f:?})::{ty}").ok(),
        Some(f) if f.is_nan() => write!(out, "'NaN'::{ty}").ok(),
        Some(f) if f > 0.0 => write!(out, "'Infinity'::{ty}").ok(),
        Some(_) => write!(out, "'-Infinity'::{ty}").ok(),
        None => typed(None, ty, out),
    }
}

/// A string literal: quotes doubled; a NUL, which no PostgreSQL text holds,
/// is refused.
fn text(v: Option<&str>, ty: &str, out: &mut String) -> Option<()> {
    let Some(s) = v else {
        return typed(None, ty, out);
    };
    if s.contains('\0') {
        return None;
    }
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    write!(out, "'::{ty}").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    use sea_orm::{ConnectionTrait, StatementBuilder};

    fn pg<S: StatementBuilder>(s: &S) -> Statement {
        DbBackend::Postgres.build(s)
    }

    #[test]
    fn values_are_written_in_place_of_their_placeholders() {
        let update = Query::update()
            .table("counters")
            .value("value", Expr::col("value").sub(-3i64))
            .and_where(Expr::col("name").eq("O'Brien の本"))
            .to_owned();
        assert_eq!(
            inlined(&pg(&update)).expect("inlined"),
            r#"UPDATE "counters" SET "value" = "value" - (-3)::int8 WHERE "name" = 'O''Brien の本'::text"#
        );
    }

    #[test]
    fn what_cannot_be_written_exactly_is_refused() {
        let nul = Query::update()
            .table("t")
            .value("a", "bad\0text")
            .to_owned();
        assert_eq!(inlined(&pg(&nul)), None);
        let commented =
            Statement::from_sql_and_values(DbBackend::Postgres, "SELECT 1 -- $1", [1i64.into()]);
        assert_eq!(inlined(&commented), None);
        let escaped =
            Statement::from_sql_and_values(DbBackend::Postgres, "SELECT E'\\'' || $1", [1.into()]);
        assert_eq!(inlined(&escaped), None);
        let missing = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT $1, $3",
            [1.into(), 2.into()],
        );
        assert_eq!(inlined(&missing), None);
        let unused =
            Statement::from_sql_and_values(DbBackend::Postgres, "SELECT $1", [1.into(), 2.into()]);
        assert_eq!(inlined(&unused), None);
    }

    #[test]
    fn a_placeholder_inside_quotes_is_left_alone() {
        let s = Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"SELECT '$1', "$1", $1"#,
            [Value::String(None)],
        );
        assert_eq!(
            inlined(&s).expect("inlined"),
            r#"SELECT '$1', "$1", NULL::text"#
        );
    }

    /// Each kind of value read back by PostgreSQL is the value bound the
    /// ordinary way: the strings that matter are those a backslash, a
    /// quote, a control character or a non-Latin script could break.
    #[tokio::test]
    async fn postgresql_reads_back_every_value_as_it_was_bound() {
        // SQLite needs none of this: it runs on PostgreSQL when the tests do.
        if !shoko_testkit::postgres_wanted() {
            return;
        }
        let db = shoko_testkit::TestDb::postgres().await;
        let store = crate::Store::open(db.url(), &crate::StoreOptions::default())
            .await
            .expect("open");
        let strings = [
            "",
            "'",
            "''; DROP TABLE counters; --",
            "\\",
            "\\x41\\'",
            "back\\slash' and \"quotes\"",
            "\u{1a}\u{7}\t\r\n",
            "日本語の書名：「図書館」",
            "$1 $$ $tag$",
        ];
        let mut values: Vec<Value> = strings.iter().map(|s| (*s).into()).collect();
        values.extend([
            Value::BigInt(Some(i64::MIN)),
            Value::BigInt(Some(i64::MAX)),
            Value::Int(Some(-7)),
            Value::BigInt(None),
            Value::Bool(Some(true)),
            Value::Double(Some(0.1)),
            Value::Double(Some(-1.5e300)),
            Value::Bytes(Some(vec![0, 1, 0x5c, 0x27, 0xff])),
            Value::Json(Some(Box::new(serde_json::json!({"書名": "a'b\\c"})))),
        ]);
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let select = Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT ({})::text", placeholders.join(")::text, (")),
            values.clone(),
        );
        let bound = store
            .db
            .query_one_raw(select.clone())
            .await
            .expect("bound")
            .expect("a row");
        let inline = inlined(&select).expect("inlined");
        let written = store
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, inline.clone()))
            .await
            .expect("inlined")
            .expect("a row");
        for (i, value) in values.iter().enumerate() {
            let a: Option<String> = bound.try_get_by_index(i).expect("bound text");
            let b: Option<String> = written.try_get_by_index(i).expect("inlined text");
            assert_eq!(
                a, b,
                "value {i} ({value:?}) read back differently from {inline}"
            );
        }
    }
}
