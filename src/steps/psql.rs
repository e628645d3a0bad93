//! `psql`: SQL on a database of the environment, or a role's new password set as a
//! SCRAM-SHA-256 verifier computed here, so the plaintext never reaches the server or its logs.
//! A database with `via: HOST` is reached through that host's SSH connection of the run; TLS
//! follows the database's `sslmode` as libpq does (rustls, SCRAM channel binding when on).

use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{CheckCx, Effect, Kind, Output, OutputSpec, Outputs, RunCx, StepError};
use crate::diag::Problem;
use crate::model::{DatabaseSpec, SslMode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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

    fn outputs(_: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
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
                if db.ca_file.is_some()
                    && !matches!(db.sslmode, SslMode::VerifyCa | SslMode::VerifyFull)
                {
                    let p = Problem::warning(
                        "runbook::ca-file-unused",
                        format!(
                            "database `{}` of environment `{}` has a `ca_file`, which sslmode `{}` does not use",
                            p.database,
                            env.name,
                            sslmode_name(db.sslmode)
                        ),
                    )
                    .help("only `verify-ca` and `verify-full` check the server's certificate");
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
            // All of the SQL, as for a command: it is what runs.
            (None, Some(sql)) => format!("on {}: {}", p.database, super::whole_text(sql)),
            (None, None) => format!("on {}: nothing", p.database),
        }
    }

    fn ssh_hosts(p: &Params, env: &crate::model::Environment) -> Vec<String> {
        env.doc
            .databases
            .get(&p.database)
            .and_then(|db| db.via.clone())
            .into_iter()
            .collect()
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
        (cx.add_secret)(&p.password)
            .map_err(|e| StepError::new(format!("the database password: {e}")))?;
        if let Some(s) = &p.set_password {
            (cx.add_secret)(&s.password)
                .map_err(|e| StepError::new(format!("the new password: {e}")))?;
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
                let fence = crate::display::md_fence(sql);
                s.push_str(&format!(
                    "At the psql prompt, run:\n\n{fence}sql\n{}\n{fence}",
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

/// Log in, through the `via` host's SSH connection when there is one, with TLS as `sslmode`
/// asks. Through a tunnel the TLS server name stays the database's `host`: the certificate
/// names the server, not the tunnel's loopback end.
async fn connect(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    password: &str,
) -> Result<Client, StepError> {
    let (host, port, through) = match &spec.via {
        Some(via) => {
            let addr = super::ssh::tunnel(cx, via, &spec.host, spec.port).await?;
            (addr.ip().to_string(), addr.port(), format!(" via {via}"))
        }
        None => (spec.host.clone(), spec.port, String::new()),
    };
    let target = format!("{user}@{}:{}/{}{through}", spec.host, spec.port, spec.name);
    let context = format!("cannot log in to database `{name}` ({target})");
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host)
        .port(port)
        .user(user)
        .password(password)
        .dbname(&spec.name)
        .application_name("runbook")
        .connect_timeout(CONNECT_TIMEOUT);
    // The connection task ends when the client is dropped; its errors surface in the queries.
    let client = match spec.sslmode {
        SslMode::Disable => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = cfg
                .connect(NoTls)
                .await
                .map_err(|e| db_error(&context, &e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        mode => {
            cfg.ssl_mode(if mode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let tls = connector(cx, name, spec).await?;
            let (client, connection) = cfg
                .connect(tls)
                .await
                .map_err(|e| login_error(&context, &e, cx, name, spec))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    Ok(client)
}

/// The TLS connector for `sslmode`: which certificates it trusts and what it checks.
async fn connector(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
) -> Result<tls::Connector, StepError> {
    let verify = match spec.sslmode {
        // Like libpq: encryption against a passive eavesdropper, no protection against an
        // active man in the middle (short of SCRAM channel binding, which the server may use).
        SslMode::Disable | SslMode::Prefer | SslMode::Require => tls::Verify::Nothing,
        SslMode::VerifyCa => tls::Verify::Chain(roots(cx, name, spec).await?),
        SslMode::VerifyFull => tls::Verify::ChainAndName(roots(cx, name, spec).await?),
    };
    tls::Connector::new(&spec.host, verify)
        .map_err(|e| StepError::new(format!("cannot set up TLS for database `{name}`: {e}")))
}

/// The CAs `ca_file` holds (and only those, like libpq's `sslrootcert`), else the platform's.
async fn roots(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
) -> Result<rustls::RootCertStore, StepError> {
    let mut store = rustls::RootCertStore::empty();
    let Some(path) = &spec.ca_file else {
        let found = tokio::task::spawn_blocking(rustls_native_certs::load_native_certs)
            .await
            .map(|r| r.certs)
            .unwrap_or_default();
        store.add_parsable_certificates(found);
        if store.is_empty() {
            return Err(StepError::new(format!(
                "sslmode `{}` of database `{name}` needs trusted CAs, and this machine has none",
                sslmode_name(spec.sslmode)
            ))
            .with_detail(format!(
                "help: set `ca_file` under `environments.{}.databases.{name}` to the CA that signed the server's certificate",
                cx.env.name
            )));
        }
        return Ok(store);
    };
    let pem = super::http::read_pem(path).map_err(|e| {
        StepError::new(format!(
            "cannot read `ca_file` {path} of database `{name}`: {e}"
        ))
    })?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|_| {
            StepError::new(format!(
                "`ca_file` {path} of database `{name}` is not a PEM certificate"
            ))
        })?;
        store.add(cert).map_err(|e| {
            StepError::new(format!(
                "`ca_file` {path} of database `{name}` holds an unusable certificate: {e}"
            ))
        })?;
    }
    if store.is_empty() {
        return Err(StepError::new(format!(
            "`ca_file` {path} of database `{name}` holds no certificate"
        )));
    }
    Ok(store)
}

/// A failed login with TLS: what went wrong with TLS in the operator's terms, with the setting
/// to change; anything else as [`db_error`].
fn login_error(
    context: &str,
    e: &tokio_postgres::Error,
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
) -> StepError {
    let mode = sslmode_name(spec.sslmode);
    let setting = format!("`environments.{}.databases.{name}`", cx.env.name);
    if super::error_chain(e).contains("server does not support TLS") {
        return StepError::new(format!(
            "{context}: the server does not support TLS (sslmode {mode})"
        ))
        .with_detail(format!(
            "help: turn `ssl` on in the server's configuration, or set `sslmode: disable` under {setting} \
             when the connection goes through `via:` (the SSH tunnel encrypts it)"
        ));
    }
    let Some(err) = tls::rustls_cause(e) else {
        return db_error(context, e);
    };
    use rustls::CertificateError as C;
    let (what, help) = match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => (
            format!("the server's certificate has an unknown issuer (sslmode {mode})"),
            match &spec.ca_file {
                None => format!(
                    "help: set `ca_file` under {setting} to the PEM file of the CA that signed the server's certificate"
                ),
                Some(path) => format!(
                    "help: `ca_file` {path} does not hold the CA that signed the server's certificate"
                ),
            },
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => (
            format!(
                "the server's certificate is not valid for host `{}` (sslmode {mode})",
                spec.host
            ),
            format!(
                "help: set `host` under {setting} to a name the certificate holds, or use `sslmode: verify-ca`"
            ),
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            format!("the server's certificate has expired (sslmode {mode})"),
            String::new(),
        ),
        other => (format!("TLS failed: {other}"), String::new()),
    };
    StepError::new(format!("{context}: {what}")).with_detail(help)
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

/// TLS for tokio-postgres over rustls (ring), with libpq's three levels of checking.
mod tls {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
    use rustls::{Error, SignatureScheme};
    use sha2::Digest;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

    pub enum Verify {
        /// `prefer`, `require`: any certificate (the handshake's signatures are still checked).
        Nothing,
        /// `verify-ca`: a chain to one of these roots, for whatever name.
        Chain(RootCertStore),
        /// `verify-full`: a chain to one of these roots, for the server name.
        ChainAndName(RootCertStore),
    }

    /// Connects with one fixed server name, whatever address the socket goes to.
    #[derive(Clone)]
    pub struct Connector {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    }

    impl Connector {
        pub fn new(host: &str, verify: Verify) -> Result<Connector, String> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?;
            let builder = match verify {
                Verify::Nothing => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
                Verify::Chain(roots) => {
                    let inner =
                        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                            .build()
                            .map_err(|e| e.to_string())?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                }
                Verify::ChainAndName(roots) => builder.with_root_certificates(roots),
            };
            let mut config = builder.with_no_client_auth();
            // What libpq 17 sends; servers that do not know ALPN ignore it.
            config.alpn_protocols = vec![b"postgresql".to_vec()];
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| format!("`{host}` is not a host name or address"))?;
            Ok(Connector {
                config: Arc::new(config),
                name,
            })
        }
    }

    impl<S> MakeTlsConnect<S> for Connector
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type TlsConnect = Connector;
        type Error = io::Error;

        /// `domain` is the address connected to, a tunnel's loopback end through `via`: the
        /// name given to [`Connector::new`] is the one to check.
        fn make_tls_connect(&mut self, _domain: &str) -> io::Result<Connector> {
            Ok(self.clone())
        }
    }

    impl<S> TlsConnect<S> for Connector
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

        fn connect(self, stream: S) -> Self::Future {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            Box::pin(async move { connector.connect(self.name, stream).await.map(Stream) })
        }
    }

    pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
        /// SCRAM's `tls-server-end-point` binding: a man in the middle, who cannot present the
        /// server's certificate, then fails the login even when the certificate is not checked.
        fn channel_binding(&self) -> ChannelBinding {
            let leaf = self
                .0
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            match leaf.and_then(|c| end_point(c)) {
                Some(hash) => ChannelBinding::tls_server_end_point(hash),
                None => ChannelBinding::none(),
            }
        }
    }

    /// RFC 5929 §4.1: the certificate hashed with its signature's hash, SHA-256 for MD5 and
    /// SHA-1. `None` for other signatures (RSA-PSS, EdDSA), where the login goes without binding.
    pub fn end_point(cert: &[u8]) -> Option<Vec<u8>> {
        const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
        const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
        const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
        let (body, _) = der(cert, 0x30)?;
        let (_, rest) = der(body, 0x30)?;
        let (alg, _) = der(rest, 0x30)?;
        let (oid, _) = der(alg, 0x06)?;
        let (family, last) = oid.split_at(oid.len().checked_sub(1)?);
        Some(match (family, last[0]) {
            // md5, sha1, sha256 with RSA
            (RSA, 4 | 5 | 11) | (ECDSA_SHA1, 1) | (ECDSA_SHA2, 2) => {
                sha2::Sha256::digest(cert).to_vec()
            }
            (RSA, 12) | (ECDSA_SHA2, 3) => sha2::Sha384::digest(cert).to_vec(),
            (RSA, 13) | (ECDSA_SHA2, 4) => sha2::Sha512::digest(cert).to_vec(),
            _ => return None,
        })
    }

    /// One DER element of type `tag` at the start of `b`: its content, and what follows it.
    fn der(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        if *b.first()? != tag {
            return None;
        }
        let first = *b.get(1)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let len = b
                .get(2..2 + n)?
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            (len, 2 + n)
        };
        let content = b.get(header..header.checked_add(len)?)?;
        Some((content, &b[header + len..]))
    }

    /// The first rustls error in a failed login's causes (tokio-rustls wraps it in an
    /// `io::Error`, whose `source()` skips it).
    pub fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut next = Some(e);
        while let Some(c) = next {
            if let Some(r) = c.downcast_ref::<Error>() {
                return Some(r);
            }
            if let Some(r) = c
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Error>())
            {
                return Some(r);
            }
            next = c.source();
        }
        None
    }

    /// `verify-ca`: the full webpki check, less the name.
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            // webpki checks the chain (and validity dates) before the name: a name error means
            // the chain was good.
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// `prefer`, `require`: no certificate check, as in libpq.
    #[derive(Debug)]
    struct AnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
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

    /// A certificate's outer structure: the TBS part (empty here), the signature algorithm
    /// with this OID, and the signature.
    fn cert_signed_with(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x30, oid.len() as u8 + 2, 0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = vec![0x30, 0x00];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn channel_binding_hashes_with_the_signature_hash() {
        let ecdsa_sha256 = cert_signed_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        let ecdsa_sha384 = cert_signed_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        let rsa_sha1 = cert_signed_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        let rsa_sha512 = cert_signed_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]);
        let ed25519 = cert_signed_with(&[0x2b, 0x65, 0x70]);
        let len = |c: &[u8]| tls::end_point(c).map(|h| h.len());
        assert_eq!(len(&ecdsa_sha256), Some(32));
        assert_eq!(len(&ecdsa_sha384), Some(48));
        // MD5 and SHA-1 are replaced by SHA-256 (RFC 5929).
        assert_eq!(len(&rsa_sha1), Some(32));
        assert_eq!(len(&rsa_sha512), Some(64));
        assert_eq!(len(&ed25519), None);
        assert_eq!(len(&[0x30, 0x05, 0x30]), None);
        assert_eq!(len(&[]), None);
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
