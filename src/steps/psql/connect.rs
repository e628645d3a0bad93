//! Logging in to a database of the environment: through the `via` host's SSH tunnel, with TLS
//! as `sslmode` asks, failures told in the operator's terms (the setting to change); and
//! `runbook preflight`'s login check.

use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::{Client, NoTls};

use super::password::{Credential, credential};
use super::tls;
use crate::model::{DatabaseSpec, SslMode};
use crate::steps::kind::{Check, Need, ProbeCx, RunCx, Stage, Status, StepError};
use crate::template;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn sslmode_name(m: SslMode) -> &'static str {
    match m {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// How a preflight login's password can be had before the run.
pub(super) enum Password {
    /// The template reads only the value of a step preflight reads: `(step id, template)`.
    FromRead(String, String),
    /// Only the run knows it (a generated value, an input not given).
    RunTime,
    /// The step gives none: found as the run will (`password_parameter`, libpq's sources).
    Sources,
}

/// How a preflight login's user can be had before the run.
pub(super) enum User {
    /// Known now: the step's or the database's.
    Known(String),
    /// The template reads only the value of a step preflight reads (`DB_USER` from SSM):
    /// `(step id, template)`.
    FromRead(String, String),
}

/// `runbook preflight`: a database login the run will make.
pub(super) struct Login {
    pub(super) database: String,
    pub(super) user: User,
    pub(super) password: Password,
}

/// Render `tmpl`, which reads only `step`'s value, with the value preflight read for that
/// step; else why the check is skipped (`what`: whose value it is).
fn from_read(cx: &ProbeCx<'_>, what: &str, step: &str, tmpl: &str) -> Result<String, String> {
    let name = cx.readable.get(step).map_or("", String::as_str);
    let Some(value) = cx.value(name) else {
        return Err(format!(
            "skipped: {what} is in `{name}`, which could not be read"
        ));
    };
    let mut ctx = cx.context.clone();
    ctx["steps"][step]["value"] = value.into();
    template::render(tmpl, &template::value(&ctx))
        .map_err(|_| format!("skipped: cannot render {what}"))
}

#[async_trait::async_trait]
impl Need for Login {
    fn stage(&self) -> Stage {
        Stage::Login
    }
    fn key(&self) -> String {
        let user = match &self.user {
            User::Known(u) | User::FromRead(_, u) => u,
        };
        format!("{:?}", (&self.database, user))
    }
    /// A login whose password can be had before the run wins over one only the run knows (a
    /// rollback's).
    fn merge(&mut self, later: Box<dyn Need>) {
        let later: Box<dyn std::any::Any> = later;
        if let Ok(later) = later.downcast::<Login>()
            && matches!(self.password, Password::RunTime)
        {
            self.password = later.password;
        }
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let db = &self.database;
        let user = match &self.user {
            User::Known(u) => u.clone(),
            User::FromRead(step, tmpl) => match from_read(cx, "its user", step, tmpl) {
                Ok(u) => u,
                Err(why) => {
                    return Check::new("database", format!("{tmpl}@{db}")).with(Status::Skip, why);
                }
            },
        };
        let user = &user;
        let c = Check::new("database", format!("{user}@{db}"));
        let via = cx
            .run
            .env
            .doc
            .databases
            .get(db)
            .and_then(|d| d.via.as_deref());
        if let Some(why) = cx.behind(via) {
            return c.with(Status::Skip, why);
        }
        let password = match &self.password {
            Password::Sources => {
                return c.outcome(check_login(&cx.run, db, Some(user), None).await);
            }
            Password::RunTime => {
                return c.with(Status::Skip, "skipped: password known only at run time");
            }
            Password::FromRead(step, tmpl) => match from_read(cx, "its password", step, tmpl) {
                Ok(p) => p,
                Err(why) => return c.with(Status::Skip, why),
            },
        };
        // Registered before any attempt: a server message quoting it is masked anyway.
        if let Err(e) = (cx.run.add_secret)(&password) {
            return c.with(Status::Fail, format!("its password: {e}"));
        }
        c.outcome(check_login(&cx.run, db, Some(user), Some(&password)).await)
    }
}

/// `runbook preflight`: log in to `database` as `user` (default: the database's) and run
/// `SELECT 1`. The password must already be registered as a secret.
pub(crate) async fn check_login(
    cx: &RunCx<'_>,
    database: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<String, StepError> {
    let spec = cx.env.doc.databases.get(database).ok_or_else(|| {
        StepError::new(format!(
            "environment `{}` has no database `{database}`",
            cx.env.name
        ))
    })?;
    let user = user.unwrap_or(&spec.user);
    let cred = credential(cx, database, spec, user, password).await?;
    let client = connect(cx, database, spec, user, &cred).await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| db_error(&format!("cannot query database `{database}`"), &e))?;
    Ok(match cred.password {
        Some(_) if password.is_none() => {
            format!("logged in as {user} (password from {})", cred.source)
        }
        Some(_) => format!("logged in as {user}"),
        None => format!("logged in as {user} without a password"),
    })
}

/// Log in, through the `via` host's SSH connection when there is one, with TLS as `sslmode`
/// asks. Through a tunnel the TLS server name stays the database's `host`: the certificate
/// names the server, not the tunnel's loopback end.
pub(super) async fn connect(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    cred: &Credential,
) -> Result<Client, StepError> {
    connect_once(cx, name, spec, user, cred)
        .await
        .map_err(|e| explain_password(e, cx, name, spec, user, cred))
}

/// A failed login: for want of a password (with the context), or any other reason.
enum Failed {
    NoPassword(String),
    Other(StepError),
}

/// A login refused for its password, in terms of where the password came from: the sources
/// tried, and what to change (never a value).
fn explain_password(
    e: Failed,
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    cred: &Credential,
) -> StepError {
    let setting = format!("`environments.{}.databases.{name}`", cx.env.name);
    let line = format!(
        "{}:{}:{}:{}:<password>",
        pgpass_field(&spec.host),
        spec.port,
        pgpass_field(&spec.name),
        pgpass_field(user)
    );
    let e = match e {
        Failed::Other(e) => e,
        Failed::NoPassword(context) => no_password(context, cred, &setting, &line),
    };
    if e.message.ends_with(&format!("({PASSWORD_REFUSED})")) {
        let help = if cred.source == "the step's `password`" {
            "check the `password` of the step (and `user`, if it overrides the database's)"
                .to_string()
        } else {
            format!(
                "the password came from {}; correct it there, or give the step a `password:`",
                cred.source
            )
        };
        return e.with_help(help);
    }
    e
}

/// The server asks for a password and no source had one: every source tried, and the ways
/// to give one.
fn no_password(context: String, cred: &Credential, setting: &str, line: &str) -> StepError {
    let mut tried = cred.tried.clone();
    tried.push("no password: the server asks for one".into());
    let tried: Vec<String> = tried.iter().map(|t| format!("- {t}")).collect();
    StepError::new(format!(
        "{context}: the server asks for a password, and none was found"
    ))
    .with_detail(format!("tried, in order:\n{}", tried.join("\n")))
    .with_help(format!(
        "give the step a `password:`, set `password_parameter` under {setting}, set \
         PGPASSWORD, or put the line `{line}` in a password file of mode 0600 (PGPASSFILE or \
         ~/.pgpass)"
    ))
}

/// A field of a password-file line, with `:` and `\` escaped as libpq reads them.
fn pgpass_field(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

async fn connect_once(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    cred: &Credential,
) -> Result<Client, Failed> {
    let (host, port, through) = match &spec.via {
        Some(via) => {
            let addr = crate::steps::ssh::tunnel(cx, via, &spec.host, spec.port)
                .await
                .map_err(Failed::Other)?;
            (addr.ip().to_string(), addr.port(), format!(" via {via}"))
        }
        None => (spec.host.clone(), spec.port, String::new()),
    };
    let target = format!("{user}@{}:{}/{}{through}", spec.host, spec.port, spec.name);
    let context = format!("cannot log in to database `{name}` ({target})");
    let mut cfg = tokio_postgres::Config::new();
    if let Some(password) = &cred.password {
        cfg.password(password);
    }
    cfg.host(&host)
        .port(port)
        .user(user)
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
                .map_err(|e| login_error(&context, &e, cx, name, spec))?;
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
            let tls = connector(cx, name, spec).await.map_err(Failed::Other)?;
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
            .with_help(format!(
                "set `ca_file` under `environments.{}.databases.{name}` to the CA that signed the server's certificate",
                cx.env.name
            )));
        }
        return Ok(store);
    };
    let pem = crate::steps::http::read_pem(path).map_err(|e| {
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
) -> Failed {
    let chain = crate::steps::common::error_chain(e);
    // tokio-postgres's words when the server asks for a password the login was not given.
    if chain.contains("password missing") {
        return Failed::NoPassword(context.to_string());
    }
    Failed::Other(tls_error(context, e, &chain, cx, name, spec))
}

/// A failed login with TLS in the operator's terms, else as [`db_error`].
fn tls_error(
    context: &str,
    e: &tokio_postgres::Error,
    chain: &str,
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
) -> StepError {
    let mode = sslmode_name(spec.sslmode);
    let setting = format!("`environments.{}.databases.{name}`", cx.env.name);
    if chain.contains("server does not support TLS") {
        return StepError::new(format!(
            "{context}: the server does not support TLS (sslmode {mode})"
        ))
        .with_help(format!(
            "turn `ssl` on in the server's configuration, or set `sslmode: disable` under {setting} \
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
                    "set `ca_file` under {setting} to the PEM file of the CA that signed the server's certificate"
                ),
                Some(path) => format!(
                    "`ca_file` {path} does not hold the CA that signed the server's certificate"
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
                "set `host` under {setting} to a name the certificate holds, or use `sslmode: verify-ca`"
            ),
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            format!("the server's certificate has expired (sslmode {mode})"),
            String::new(),
        ),
        other => (format!("TLS failed: {other}"), String::new()),
    };
    StepError::new(format!("{context}: {what}")).with_help(help)
}

/// A server error with its SQLSTATE, or the cause of a connection failure; never "db error".
/// SQLSTATE of "password authentication failed"; `db_error` ends its message with it.
pub(super) const PASSWORD_REFUSED: &str = "28P01";

pub(super) fn db_error(context: &str, e: &tokio_postgres::Error) -> StepError {
    if let Some(db) = e.as_db_error() {
        let mut detail = Vec::new();
        if let Some(d) = db.detail() {
            detail.push(format!("detail: {d}"));
        }
        if let Some(h) = db.hint() {
            detail.push(format!("hint: {h}"));
        }
        return StepError::new(format!(
            "{context}: {} ({})",
            db.message(),
            db.code().code()
        ))
        .with_detail(detail.join("\n"));
    }
    // Not from the server: the cause (refused, timed out, closed) says what happened.
    StepError::new(format!(
        "{context}: {}",
        crate::steps::common::error_chain(e)
    ))
}
