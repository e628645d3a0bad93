//! Where a `psql` login's password comes from when the step gives no `password:`: the
//! database's `password_parameter` (an SSM parameter, read at run time as a secret), then
//! libpq's own order: `PGPASSWORD` of this process, the file `PGPASSFILE` names or else
//! `~/.pgpass` (ignored, as libpq does, when it is not a plain file or its group or others
//! have any access), then no password at all (trust or peer on the far side of a tunnel).
//! What was tried is kept, by name and never by value, for the error when nothing works.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use crate::model::DatabaseSpec;
use crate::steps::kind::{Kind, RunCx, StepError};

/// `PGPASSWORD` as this process was started with it, taken out of its environment.
static PGPASSWORD: OnceLock<Option<String>> = OnceLock::new();

/// Take `PGPASSWORD` out of this process's environment and keep it here, so that no child
/// (the SSH master, `git`) inherits it. Called first thing in `main`, before any thread starts
/// (changing the environment is only sound then).
pub fn take_pgpassword() {
    let value = std::env::var("PGPASSWORD").ok();
    if std::env::var_os("PGPASSWORD").is_some() {
        // SAFETY: called from `cli::main` before any other thread exists.
        unsafe { std::env::remove_var("PGPASSWORD") };
    }
    let _ = PGPASSWORD.set(value);
}

fn pgpassword() -> Option<String> {
    PGPASSWORD
        .get_or_init(|| std::env::var("PGPASSWORD").ok())
        .clone()
        .filter(|v| !v.is_empty())
}

/// What a login is matched on in a password file (libpq's `host:port:database:user`).
pub(super) struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// A password and where it came from (for an error: "the password from PGPASSFILE … line 3").
pub(super) struct Found {
    pub password: String,
    pub source: String,
}

/// libpq's sources after an explicit password: `PGPASSWORD`, then one password file. Returns
/// the first password found, and one line per source tried (never a value).
pub(super) fn libpq(t: &Target<'_>, tried: &mut Vec<String>) -> Option<Found> {
    if let Some(password) = pgpassword() {
        return Some(Found {
            password,
            source: "PGPASSWORD".into(),
        });
    }
    tried.push("PGPASSWORD: not set".into());
    let (label, path) = match std::env::var_os("PGPASSFILE").filter(|v| !v.is_empty()) {
        Some(p) => ("PGPASSFILE", std::path::PathBuf::from(p)),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => {
                tried.push("PGPASSFILE: not set".into());
                ("~/.pgpass", std::path::PathBuf::from(home).join(".pgpass"))
            }
            None => {
                tried.push("PGPASSFILE: not set".into());
                tried.push("~/.pgpass: no home directory (HOME is not set)".into());
                return None;
            }
        },
    };
    let shown = path.display().to_string();
    let shown = crate::display::visible_line(&shown);
    match from_file(&path, t) {
        Ok((line, password)) => Some(Found {
            password,
            source: format!("{label} {shown} (line {line})"),
        }),
        Err(why) => {
            tried.push(format!("{label} {shown}: {why}"));
            None
        }
    }
}

/// The first line of a password file matching `t`, with its number; or why there is none.
fn from_file(path: &std::path::Path, t: &Target<'_>) -> Result<(usize, String), String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("no such file".into()),
        Err(e) => return Err(format!("cannot read it ({})", e.kind())),
    };
    if !meta.is_file() {
        return Err("ignored: not a plain file".into());
    }
    // libpq's rule: a file the group or others can read, write or enter is not used.
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "ignored: its mode is {:04o}, and group or others have access (libpq uses it only at 0600 or less)",
            mode & 0o7777
        ));
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut text))
        .map_err(|e| format!("cannot read it ({})", e.kind()))?;
    let text = String::from_utf8_lossy(&text);
    let want = format!("{}:{}:{}:{}", t.host, t.port, t.dbname, t.user);
    match find(&text, t) {
        Some((line, p)) if p.is_empty() => Err(format!(
            "line {line} matches {} and holds an empty password",
            crate::display::visible_line(&want)
        )),
        Some(found) => Ok(found),
        None => Err(format!(
            "no line matches {}",
            crate::display::visible_line(&want)
        )),
    }
}

/// libpq's `passwordFromFile`: lines `host:port:database:user:password`, `#` comments, a field
/// of only `*` matching anything, `\` escaping `:` and `\`; the first matching line wins.
fn find(text: &str, t: &Target<'_>) -> Option<(usize, String)> {
    let port = t.port.to_string();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line.as_bytes();
        let mut ok = true;
        for token in [t.host, &port, t.dbname, t.user] {
            match field_matches(rest, token.as_bytes()) {
                Some(after) => rest = after,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        // The password: up to the first unescaped `:`, escapes removed.
        let mut out = Vec::new();
        let mut i = 0;
        while i < rest.len() && rest[i] != b':' {
            if rest[i] == b'\\' && i + 1 < rest.len() {
                i += 1;
            }
            out.push(rest[i]);
            i += 1;
        }
        return Some((n + 1, String::from_utf8_lossy(&out).into_owned()));
    }
    None
}

/// libpq's `pwdfMatchesString`: whether the field at the start of `buf` matches `token`,
/// and what follows its `:`.
fn field_matches<'b>(buf: &'b [u8], token: &[u8]) -> Option<&'b [u8]> {
    if buf.starts_with(b"*:") {
        return Some(&buf[2..]);
    }
    let (mut i, mut j) = (0, 0);
    while i < buf.len() {
        let mut escaped = false;
        if buf[i] == b'\\' {
            i += 1;
            escaped = true;
            if i == buf.len() {
                return None;
            }
        }
        if buf[i] == b':' && !escaped && j == token.len() {
            return Some(&buf[i + 1..]);
        }
        if j == token.len() || buf[i] != token[j] {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// A login's password, where it came from, and what was tried before it.
pub(crate) struct Credential {
    /// `None`: log in without one (trust or peer auth on the server).
    pub password: Option<String>,
    /// Where it came from, for an error ("PGPASSFILE /x (line 3)"); never the value.
    pub source: String,
    /// The sources tried before it that had none, one line each.
    pub tried: Vec<String>,
}

impl Credential {
    pub(crate) fn given(password: &str, source: &str) -> Credential {
        Credential {
            password: Some(password.to_string()),
            source: source.to_string(),
            tried: Vec::new(),
        }
    }
}

/// The password a login as `user` on database `name` uses: the step's, else the database's
/// `password_parameter` (when `user` is the database's own), else libpq's sources, else none.
/// Whatever is found is registered as a secret before it is returned.
pub(crate) async fn credential(
    cx: &RunCx<'_>,
    name: &str,
    spec: &DatabaseSpec,
    user: &str,
    given: Option<&str>,
) -> Result<Credential, StepError> {
    let register = |c: Credential| -> Result<Credential, StepError> {
        if let Some(p) = &c.password {
            (cx.add_secret)(p).map_err(|e| {
                StepError::new(format!(
                    "the password for database `{name}` from {}: {e}",
                    c.source
                ))
            })?;
        }
        Ok(c)
    };
    if let Some(p) = given {
        return register(Credential::given(p, "the step's `password`"));
    }
    let mut tried = vec!["the step's `password`: not given".to_string()];
    match &spec.password_parameter {
        Some(param) if user == spec.user => {
            let password = read_parameter(cx, name, param).await?;
            return register(Credential {
                password: Some(password),
                source: format!(
                    "SSM parameter {param} (`password_parameter` of database `{name}`)"
                ),
                tried,
            });
        }
        Some(param) => tried.push(format!(
            "`password_parameter` {param}: it holds the password of `{}`, not of `{user}`",
            spec.user
        )),
        None => tried.push(format!(
            "`password_parameter` of database `{name}`: not set"
        )),
    }
    let target = Target {
        host: &spec.host,
        port: spec.port,
        dbname: &spec.name,
        user,
    };
    match libpq(&target, &mut tried) {
        Some(found) => register(Credential {
            password: Some(found.password),
            source: found.source,
            tried,
        }),
        None => Ok(Credential {
            password: None,
            source: "no password (trust or peer authentication)".into(),
            tried,
        }),
    }
}

/// The value of the SSM parameter holding a database's password (a secret, whatever its type).
async fn read_parameter(cx: &RunCx<'_>, name: &str, param: &str) -> Result<String, StepError> {
    let p = crate::steps::ssm::GetParams {
        name: param.to_string(),
        decrypt: true,
        public: false,
        secret: false,
    };
    let outputs = <crate::steps::ssm::Get as Kind>::run(p, cx)
        .await
        .map_err(|e| {
            let mut out = StepError::new(format!(
                "cannot read `password_parameter` {param} of database `{name}`: {}",
                e.message
            ));
            out.detail = e.detail;
            out.help = e.help;
            out
        })?;
    let value = outputs
        .into_iter()
        .find(|o| o.name == "value")
        .and_then(|o| o.value.as_str().map(str::to_string))
        .ok_or_else(|| StepError::new(format!("SSM returned no value for `{param}`")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Target<'static> {
        Target {
            host: "127.0.0.1",
            port: 5433,
            dbname: "musehub",
            user: "musehub_blue",
        }
    }

    #[test]
    fn the_first_matching_line_wins_and_star_matches_anything() {
        let text = "# comment\n\
                    127.0.0.1:5432:musehub:musehub_blue:wrong-port\n\
                    127.0.0.1:5433:other:musehub_blue:wrong-db\n\
                    *:5433:*:musehub_blue:first\n\
                    127.0.0.1:5433:musehub:musehub_blue:second\n";
        assert_eq!(find(text, &t()), Some((4, "first".into())));
    }

    #[test]
    fn escapes_and_crlf_lines_are_read_like_libpq() {
        // `\:` and `\\` in a field and in the password; a line ending in CRLF.
        let text = "127.0.0.1:5433:muse\\:hub:musehub_blue:no\r\n\
                    127.0.0.1:5433:musehub:musehub_blue:a\\:b\\\\c:ignored-after-colon\r\n";
        assert_eq!(find(text, &t()), Some((2, "a:b\\c".into())));
        let text = "127.0.0.1:5433:musehub:musehub_\\blue:x\n";
        assert_eq!(
            find(text, &t()),
            Some((1, "x".into())),
            "an escaped letter is itself"
        );
    }

    #[test]
    fn a_star_only_matches_a_whole_field_and_short_lines_match_nothing() {
        let text = "127.0.0.*:5433:musehub:musehub_blue:partial-star\n\
                    127.0.0.1:5433:musehub\n\
                    127.0.0.1:5433:musehub:musehub_blue\n";
        assert_eq!(find(text, &t()), None);
        let text = "127.0.0.1:5433:musehub:musehub_blue:\n";
        assert_eq!(find(text, &t()), Some((1, String::new())));
    }

    #[test]
    fn a_field_must_match_whole() {
        assert!(field_matches(b"127.0.0.10:x", b"127.0.0.1").is_none());
        assert!(field_matches(b"127.0.0.1:x", b"127.0.0.10").is_none());
        assert_eq!(field_matches(b"127.0.0.1:x", b"127.0.0.1"), Some(&b"x"[..]));
        assert_eq!(field_matches(b"*:x", b"anything"), Some(&b"x"[..]));
    }
}
