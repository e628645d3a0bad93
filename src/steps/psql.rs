//! `psql`: SQL on a database of the environment, or a role's new password set as a
//! SCRAM-SHA-256 verifier computed here, so the plaintext never reaches the server or its logs.
//! A database with `via: HOST` is reached through that host's SSH connection of the run.

use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{CheckCx, Effect, Kind, Output, OutputSpec, Outputs, RunCx, StepError};
use crate::diag::Problem;
use crate::model::{DatabaseSpec, SslMode};

pub struct Psql;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A database of the environment (`databases:` in environments.yaml).
    pub database: String,
    /// The login password, usually `{{ steps.current.value }}`.
    pub password: String,
    /// Log in as this role instead of the database's `user` (e.g. an admin role).
    #[serde(default)]
    pub user: Option<String>,
    /// A statement to run (or several, separated by `;`, when there are no `params`).
    #[serde(default)]
    pub sql: Option<String>,
    /// Bind parameters `$1`, `$2`… of `sql`, sent as text (the server converts them); `~` is NULL.
    #[serde(default)]
    pub params: Vec<Option<String>>,
    /// Set a role's password (instead of `sql`).
    #[serde(default)]
    pub set_password: Option<SetPassword>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The role whose password changes.
    pub role: String,
    /// The new password. Only its SCRAM-SHA-256 verifier is sent.
    pub password: String,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Kind for Psql {
    const NAME: &'static str = "psql";
    const SUMMARY: &'static str = "Run SQL on a database, or set a role's password as a SCRAM verifier (outputs `rows`, `affected`).";
    type Params = Params;

    fn outputs(_: &Params) -> Vec<OutputSpec> {
        vec![OutputSpec::public("rows"), OutputSpec::public("affected")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        cx.require_database("database", &p.database);
        match (&p.sql, &p.set_password) {
            (Some(_), Some(_)) | (None, None) => cx.problem_at(
                "",
                Problem::error(
                    "runbook::psql-action",
                    "a psql step takes exactly one of `sql` and `set_password`",
                ),
            ),
            (None, Some(_)) if !p.params.is_empty() => cx.problem_at(
                "params",
                Problem::error("runbook::psql-action", "`params` go with `sql`"),
            ),
            _ => {}
        }
        if !p.database.contains("{{") {
            for env in cx.environments {
                let Some(db) = env.doc.databases.get(&p.database) else {
                    continue;
                };
                if db.sslmode != SslMode::Disable {
                    let p = Problem::error(
                        "runbook::sslmode-unsupported",
                        format!(
                            "database `{}` of environment `{}` has sslmode `{}`, which is not supported yet",
                            p.database,
                            env.name,
                            sslmode_name(db.sslmode)
                        ),
                    )
                    .help(format!(
                        "set `sslmode: disable` under `environments.{}.databases.{}` when the connection \
                         goes through `via:` (the SSH tunnel encrypts it) or stays on this machine",
                        env.name, p.database
                    ));
                    cx.problem_at("database", p);
                }
                if let Some(via) = &db.via
                    && !env.doc.hosts.contains_key(via)
                {
                    cx.problem_at(
                        "database",
                        Problem::error(
                            "runbook::unknown-host",
                            format!(
                                "database `{}` of environment `{}` goes via host `{via}`, which the environment does not have",
                                p.database, env.name
                            ),
                        ),
                    );
                }
            }
        }
    }

    fn describe(p: &Params) -> String {
        match (&p.set_password, &p.sql) {
            (Some(s), _) => format!(
                "set the password of role {} on {} (SCRAM-SHA-256 verifier)",
                s.role, p.database
            ),
            (None, Some(sql)) => {
                let first = sql
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let more = if sql.trim().lines().count() > 1 {
                    " …"
                } else {
                    ""
                };
                format!("on {}: {first}{more}", p.database)
            }
            (None, None) => format!("on {}: nothing", p.database),
        }
    }

    fn effect(p: &Params) -> Effect {
        match (&p.set_password, &p.sql) {
            (Some(s), _) => Effect::Changes(format!(
                "the password of role `{}` on `{}`",
                s.role, p.database
            )),
            (None, Some(sql)) if read_only(sql) => Effect::ReadOnly,
            _ => Effect::Changes(format!("runs SQL on `{}`", p.database)),
        }
    }

    /// Setting a role's password to the same value again is harmless; arbitrary SQL is not.
    fn idempotent(p: &Params) -> bool {
        p.set_password.is_some() || p.sql.as_deref().is_some_and(read_only)
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        // Registered first: the redactor then hides them even in a server's error message.
        (cx.add_secret)(&p.password);
        if let Some(s) = &p.set_password {
            (cx.add_secret)(&s.password);
        }
        let spec = cx.env.doc.databases.get(&p.database).ok_or_else(|| {
            StepError::new(format!(
                "environment `{}` has no database `{}`",
                cx.env.name, p.database
            ))
        })?;
        let user = p.user.clone().unwrap_or_else(|| spec.user.clone());
        let mut client = match connect(cx, &p.database, spec, &user, &p.password).await {
            Ok(c) => c,
            // A role changing its own password, run again after a crash cut the first attempt
            // short: the server may already have the new password. If it accepts it, the
            // change went through; setting it once more is harmless.
            Err(e) if e.message.ends_with(&format!("({PASSWORD_REFUSED})")) => {
                match &p.set_password {
                    Some(s) if s.role == user && s.password != p.password => {
                        let c = connect(cx, &p.database, spec, &user, &s.password)
                            .await
                            .map_err(|_| e)?;
                        (cx.progress)(&format!(
                            "role `{user}` already has the new password (an earlier attempt got through)"
                        ));
                        c
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };

        let (rows, affected) = match (&p.set_password, &p.sql) {
            (Some(s), None) => {
                set_password(cx, &mut client, &s.role, &s.password).await?;
                (Vec::new(), 0)
            }
            (None, Some(sql)) => run_sql(&client, sql, &p.params).await?,
            _ => {
                return Err(StepError::new(
                    "a psql step takes exactly one of `sql` and `set_password`",
                ));
            }
        };
        Ok(vec![
            Output {
                name: "rows".into(),
                value: serde_json::Value::Array(rows),
                secret: false,
            },
            Output {
                name: "affected".into(),
                value: affected.into(),
                secret: false,
            },
        ])
    }

    fn by_hand(p: &Params, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        let mut s = cx.psql_session(&p.database, p.user.as_deref(), &p.password);
        match (&p.set_password, &p.sql) {
            (Some(sp), _) => {
                // psql folds an unquoted name to lower case, like SQL.
                let plain = sp.role.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                let role = if plain {
                    sp.role.clone()
                } else {
                    escape_identifier(&sp.role)
                };
                s.push_str(&format!(
                    "At the psql prompt, set the password, entering `{}` twice when asked:\n\n\
                     ```\n\\password {role}\n```\n\n\
                     `\\password` sends the server only a verifier it computes itself \
                     (SCRAM-SHA-256 when the server's `password_encryption` is `scram-sha-256`), \
                     never the password, so the password is in no command line, history or \
                     server log.",
                    sp.password
                ));
            }
            (None, Some(sql)) => {
                s.push_str(&format!(
                    "At the psql prompt, run:\n\n```sql\n{}\n```",
                    sql.trim_end()
                ));
                if !p.params.is_empty() {
                    let binds: Vec<String> = p
                        .params
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            format!("`${}` = `{}`", i + 1, v.as_deref().unwrap_or("NULL"))
                        })
                        .collect();
                    s.push_str(&format!("\n\nwith {}.", binds.join(", ")));
                }
            }
            (None, None) => {}
        }
        Some(s)
    }
}

fn sslmode_name(m: SslMode) -> &'static str {
    match m {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

fn read_only(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(first.as_str(), "select" | "show" | "values" | "table")
}

/// `runbook preflight`: log in to `database` as `user` (default: the database's) and run
/// `SELECT 1`. The password must already be registered as a secret.
pub(crate) async fn check_login(
    cx: &RunCx<'_>,
    database: &str,
    user: Option<&str>,
    password: &str,
) -> Result<String, StepError> {
    let spec = cx.env.doc.databases.get(database).ok_or_else(|| {
        StepError::new(format!(
            "environment `{}` has no database `{database}`",
            cx.env.name
        ))
    })?;
    let user = user.unwrap_or(&spec.user);
    let client = connect(cx, database, spec, user, password).await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| db_error(&format!("cannot query database `{database}`"), &e))?;
    Ok(format!("logged in as {user}"))
}

/// Log in, through the `via` host's SSH connection when there is one.
async fn connect(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    password: &str,
) -> Result<Client, StepError> {
    if spec.sslmode != SslMode::Disable {
        return Err(StepError::new(format!(
            "sslmode `{}` of database `{name}` is not supported yet",
            sslmode_name(spec.sslmode)
        )));
    }
    let (host, port, through) = match &spec.via {
        Some(via) => {
            let addr = super::ssh::tunnel(cx, via, &spec.host, spec.port).await?;
            (addr.ip().to_string(), addr.port(), format!(" via {via}"))
        }
        None => (spec.host.clone(), spec.port, String::new()),
    };
    let target = format!("{user}@{}:{}/{}{through}", spec.host, spec.port, spec.name);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(&spec.name)
        .application_name("runbook")
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
        db_error(
            &format!("cannot log in to database `{name}` ({target})"),
            &e,
        )
    })?;
    // The connection task ends when the client is dropped; its errors surface in the queries.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A server error with its SQLSTATE, or the cause of a connection failure; never "db error".
/// SQLSTATE of "password authentication failed"; `db_error` ends its message with it.
const PASSWORD_REFUSED: &str = "28P01";

fn db_error(context: &str, e: &tokio_postgres::Error) -> StepError {
    if let Some(db) = e.as_db_error() {
        let mut detail = Vec::new();
        if let Some(d) = db.detail() {
            detail.push(format!("detail: {d}"));
        }
        if let Some(h) = db.hint() {
            detail.push(format!("hint: {h}"));
        }
        if db.code() == &tokio_postgres::error::SqlState::INVALID_PASSWORD {
            detail.push("help: check the `password` of the step (and `user`, if it overrides the database's)".into());
        }
        return StepError::new(format!(
            "{context}: {} ({})",
            db.message(),
            db.code().code()
        ))
        .with_detail(detail.join("\n"));
    }
    // Not from the server: the cause (refused, timed out, closed) says what happened.
    StepError::new(format!("{context}: {}", super::error_chain(e)))
}

/// `ALTER ROLE … PASSWORD '<verifier>'` in one transaction with statement logging off.
///
/// Statement logging can only be turned off by a role allowed to set `log_statement` (a
/// superuser, or PostgreSQL 15+'s `GRANT SET ON PARAMETER log_statement`). When it is refused
/// the change still goes ahead: what the log would then hold is the verifier, the same value
/// the server stores in `pg_authid`, never the password. The operator is told in the progress.
async fn set_password(
    cx: &RunCx<'_>,
    client: &mut Client,
    role: &str,
    password: &str,
) -> Result<(), StepError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let what = format!("cannot set the password of role `{role}`");
    let mut tx = client
        .transaction()
        .await
        .map_err(|e| db_error(&what, &e))?;
    {
        let sp = tx
            .savepoint("runbook_log_statement")
            .await
            .map_err(|e| db_error(&what, &e))?;
        match sp.batch_execute("SET LOCAL log_statement = 'none'").await {
            Ok(()) => sp.commit().await.map_err(|e| db_error(&what, &e))?,
            Err(e) => {
                sp.rollback().await.map_err(|e| db_error(&what, &e))?;
                let why = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string());
                (cx.progress)(&format!(
                    "statement logging stays on ({why}); a server log can hold the SCRAM verifier, never the password"
                ));
            }
        }
    }
    let sql = format!(
        "ALTER ROLE {} PASSWORD {}",
        escape_identifier(role),
        escape_literal(&verifier)
    );
    tx.batch_execute(&sql)
        .await
        .map_err(|e| db_error(&what, &e))?;
    tx.commit().await.map_err(|e| db_error(&what, &e))?;
    Ok(())
}

async fn run_sql(
    client: &Client,
    sql: &str,
    params: &[Option<String>],
) -> Result<(Vec<serde_json::Value>, u64), StepError> {
    let what = "the SQL failed";
    if params.is_empty() {
        // The simple protocol returns every value as text and allows several statements; the
        // column types, when the statement can be prepared, turn numbers and booleans back
        // into JSON numbers and booleans.
        let types: Option<Vec<Type>> = client
            .prepare(sql)
            .await
            .ok()
            .map(|s| s.columns().iter().map(|c| c.type_().clone()).collect());
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| db_error(what, &e))?;
        let mut rows = Vec::new();
        let mut affected = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::Row(r) => {
                    let mut obj = serde_json::Map::new();
                    for (i, col) in r.columns().iter().enumerate() {
                        let ty = types.as_ref().and_then(|t| t.get(i));
                        obj.insert(col.name().to_string(), text_value(r.get(i), ty));
                    }
                    rows.push(serde_json::Value::Object(obj));
                }
                SimpleQueryMessage::CommandComplete(n) => affected += n,
                _ => {}
            }
        }
        return Ok((rows, affected));
    }
    let stmt = client.prepare(sql).await.map_err(|e| db_error(what, &e))?;
    for c in stmt.columns() {
        if !decodable(c.type_()) {
            return Err(StepError::new(format!(
                "column `{}` has type `{}`, which a query with `params` cannot return",
                c.name(),
                c.type_().name()
            ))
            .with_detail(format!("help: cast it in the SQL: `{}::text`", c.name())));
        }
    }
    let binds: Vec<TextParam> = params.iter().map(|p| TextParam(p.as_deref())).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    let result = client
        .query(&stmt, &refs)
        .await
        .map_err(|e| db_error(what, &e))?;
    let rows: Vec<serde_json::Value> = result
        .iter()
        .map(|row| {
            let mut obj = serde_json::Map::new();
            for (i, col) in row.columns().iter().enumerate() {
                let v = row
                    .try_get::<_, Cell>(i)
                    .map_or(serde_json::Value::Null, |c| c.0);
                obj.insert(col.name().to_string(), v);
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    let n = rows.len() as u64;
    Ok((rows, n))
}

/// A value from the simple protocol (text), typed by its column when known.
fn text_value(v: Option<&str>, ty: Option<&Type>) -> serde_json::Value {
    let Some(v) = v else {
        return serde_json::Value::Null;
    };
    let typed = match ty {
        Some(t) if *t == Type::BOOL => Some(serde_json::Value::Bool(v == "t")),
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(t) => {
            v.parse::<i64>().ok().map(Into::into)
        }
        Some(t) if [Type::JSON, Type::JSONB].contains(t) => serde_json::from_str(v).ok(),
        _ => None,
    };
    typed.unwrap_or_else(|| v.into())
}

fn decodable(t: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::JSON,
        Type::JSONB,
    ]
    .contains(t)
}

/// A column value of the binary protocol, as JSON.
struct Cell(serde_json::Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let v = match *ty {
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT8 => i64::from_sql(ty, raw)?.into(),
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.into(),
            Type::JSON => serde_json::from_slice(raw)?,
            // jsonb's binary form is a version byte, then the text.
            Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
            _ => String::from_utf8_lossy(raw).into_owned().into(),
        };
        Ok(Cell(v))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(serde_json::Value::Null))
    }
    fn accepts(ty: &Type) -> bool {
        decodable(ty)
    }
}

/// A bind parameter sent in text format, so the server converts it to whatever type `$n` has.
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        // The `bytes` buffer as postgres-types re-exports it (for its `to_sql_checked!`), which
        // spares a direct dependency on `bytes`.
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_take_their_column_type() {
        assert_eq!(
            text_value(Some("42"), Some(&Type::INT4)),
            serde_json::json!(42)
        );
        assert_eq!(
            text_value(Some("t"), Some(&Type::BOOL)),
            serde_json::json!(true)
        );
        assert_eq!(
            text_value(Some("42"), Some(&Type::TEXT)),
            serde_json::json!("42")
        );
        assert_eq!(text_value(Some("1.50"), None), serde_json::json!("1.50"));
        assert_eq!(text_value(None, Some(&Type::INT4)), serde_json::Value::Null);
    }

    #[test]
    fn read_only_statements() {
        assert!(read_only("  SELECT 1"));
        assert!(read_only("select(1)"));
        assert!(!read_only("ALTER ROLE x"));
        assert!(!read_only(
            "with d as (delete from t returning *) select * from d"
        ));
    }
}
