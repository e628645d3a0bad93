//! `psql`: SQL on a database of the environment, or a role's new password set as a
//! SCRAM-SHA-256 verifier computed here, so the plaintext never reaches the server or its logs.
//! A database with `via: HOST` is reached through that host's SSH connection of the run; TLS
//! follows the database's `sslmode` as libpq does (rustls, SCRAM channel binding when on).
//!
//! `connect.rs`: logging in (tunnel, TLS settings, errors in the operator's terms) and
//! preflight's login check; `values.rs`: statements, their bind parameters and the values
//! they return; `tls.rs`: TLS for tokio-postgres over rustls. This file is the kind.

mod connect;
mod password;
mod tls;
mod values;

pub use password::take_pgpassword;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::Client;

use super::kind::{
    CheckCx, Effect, Kind, Logged, NeedCx, Needs, Output, OutputSpec, Outputs, Resources, RunCx,
    StepError,
};
use crate::diag::{Code, Problem};
use crate::load::yaml::Node;
use crate::model::SslMode;
use crate::model::patterns::given;
use crate::template;
use connect::{Login, PASSWORD_REFUSED, Password, User, connect, db_error, sslmode_name};
use password::{Credential, credential};
use values::run_sql;

pub struct Psql;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// Exactly one of `sql` and `set_password`; `params` go with `sql`.
#[schemars(extend(
    "oneOf" = [given("sql"), given("set_password")],
    "if" = given("set_password"),
    "then" = { "properties": { "params": { "maxItems": 0 } } }
))]
pub struct Params {
    /// A database of the environment (`databases:` in environments.yaml).
    pub database: String,
    /// The login password, usually `{{ steps.current.value }}`. Without it, the database's
    /// `password_parameter` (an SSM parameter), else libpq's sources: `PGPASSWORD`, the file
    /// `PGPASSFILE` names or `~/.pgpass`, else no password (trust or peer auth).
    #[serde(default)]
    pub password: Option<String>,
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

impl Kind for Psql {
    const NAME: &'static str = "psql";
    const SUMMARY: &'static str = "Run SQL on a database, or set a role's password as a SCRAM verifier (outputs `rows`, `affected`).";
    type Params = Params;

    fn server_logged() -> &'static [(&'static str, Logged)] {
        &[
            ("sql", Logged::Statement),
            ("params", Logged::BindParameters),
        ]
    }

    fn outputs(_: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![OutputSpec::public("rows"), OutputSpec::public("affected")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        cx.require_database("database", &p.database);
        match (&p.sql, &p.set_password) {
            (Some(_), Some(_)) | (None, None) => cx.problem_at(
                "",
                Problem::error(
                    Code::PsqlAction,
                    "a psql step takes exactly one of `sql` and `set_password`",
                ),
            ),
            (None, Some(_)) if !p.params.is_empty() => cx.problem_at(
                "params",
                Problem::error(Code::PsqlAction, "`params` go with `sql`"),
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
                        Code::CaFileUnused,
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
                            Code::UnknownHost,
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
            (None, Some(sql)) => format!("on {}: {}", p.database, super::common::whole_text(sql)),
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

    fn warm_up(p: &Params, env: &crate::model::Environment, resources: &Resources) {
        super::ssh::warm_up(resources, env, &Self::ssh_hosts(p, env));
    }

    fn example() -> &'static str {
        "{ database: main, password: p, sql: select 1 }"
    }

    /// A database login the run will make, with its `via` host; its password can be had
    /// before the run when it is exactly the value of an SSM read preflight makes.
    fn preflight(p: Option<Params>, cx: &NeedCx<'_>, needs: &mut Needs) {
        let Some(p) = p else {
            return;
        };
        let id = cx.step_id;
        if !needs.known("database", id, &p.database) {
            return;
        }
        let Some(spec) = cx.env.doc.databases.get(&p.database) else {
            return;
        };
        if let Some(via) = &spec.via {
            needs.add(super::ssh::host_need(via.clone(), id));
        }
        let user = p.user.unwrap_or_else(|| spec.user.clone());
        // A user read from SSM by an earlier step (db-password's `DB_USER`) is read by
        // preflight too: the login is checked as that user, not skipped.
        let raw_user = cx.params.get("user").and_then(Node::as_str);
        let user = if needs.is_known(&user) {
            User::Known(user)
        } else if let Some(step) = raw_user.and_then(|raw| read_by(raw, needs)) {
            User::FromRead(step, raw_user.unwrap_or_default().to_string())
        } else {
            needs.known("database", id, &user);
            return;
        };
        let raw = cx.params.get("password").and_then(Node::as_str);
        if raw.is_none() {
            // Found at check time as the run finds it: the parameter, PGPASSWORD, a pgpass file.
            needs.add(Box::new(Login {
                database: p.database,
                user,
                password: Password::Sources,
            }));
            return;
        }
        let password = raw
            .and_then(|raw| Some(Password::FromRead(read_by(raw, needs)?, raw.to_string())))
            .unwrap_or(Password::RunTime);
        needs.add(Box::new(Login {
            database: p.database,
            user,
            password,
        }));
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

    /// SQL the kind cannot judge read-only (a function that only reads) its author can
    /// vouch for; a password set is a change whatever anyone says.
    fn may_be_read_only(p: &Params) -> Result<(), String> {
        match Self::effect(p) {
            Effect::Changes(what) if p.set_password.is_some() => Err(what),
            _ => Ok(()),
        }
    }

    /// Setting a role's password to the same value again is harmless; arbitrary SQL is not.
    fn idempotent(p: &Params) -> bool {
        p.set_password.is_some() || p.sql.as_deref().is_some_and(read_only)
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        // Registered first: the redactor then hides them even in a server's error message.
        if let Some(password) = &p.password {
            (cx.add_secret)(password)
                .map_err(|e| StepError::new(format!("the database password: {e}")))?;
        }
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
        let cred = credential(cx, &p.database, spec, &user, p.password.as_deref()).await?;
        let mut client = match connect(cx, &p.database, spec, &user, &cred).await {
            Ok(c) => c,
            // A role changing its own password, run again after a crash cut the first attempt
            // short: the server may already have the new password. If it accepts it, the
            // change went through; setting it once more is harmless.
            Err(e) if e.message.ends_with(&format!("({PASSWORD_REFUSED})")) => {
                match &p.set_password {
                    Some(s) if s.role == user && cred.password.as_ref() != Some(&s.password) => {
                        let new = Credential::given(&s.password, "the new password");
                        let c = connect(cx, &p.database, spec, &user, &new)
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

    fn by_hand(p: &Params, cx: &super::hand::HandCx<'_>) -> Option<String> {
        let mut s = cx.psql_session(&p.database, p.user.as_deref(), p.password.as_deref());
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

/// The step whose value `raw` (a parameter's template) is exactly, when preflight reads that
/// step's value before the run (an SSM read): a login's user or password it can have now.
fn read_by(raw: &str, needs: &Needs) -> Option<String> {
    let refs = template::references(raw).ok()?;
    let [only] = refs.as_slice() else {
        return None;
    };
    let step_id = only.strip_prefix("steps.")?.strip_suffix(".value")?;
    needs
        .readable
        .contains_key(step_id)
        .then(|| step_id.to_string())
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

/// `ALTER ROLE … PASSWORD '<verifier>'` in one transaction with statement logging off.
///
/// Statement logging can only be turned off by a role allowed to set `log_statement` (a
/// superuser, or PostgreSQL 15+'s `GRANT SET ON PARAMETER log_statement`). When it is refused
/// the change still goes ahead: what the log would then hold is the verifier, the same value
/// the server stores in `pg_authid`, never the password. The operator is warned (a line that
/// stays, in the event log and the summary).
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
                (cx.warn)(&format!(
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

#[cfg(test)]
mod tests {
    use super::*;

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
