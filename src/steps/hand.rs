//! How a step is done by hand, for `runbook docs`: what a kind's [`Kind::by_hand`] is given
//! ([`HandCx`]: the environment, the page's secret placeholders and files) and the shell
//! quoting and commands (ssh, psql, the AWS CLI options) the kinds' texts share.
//!
//! [`Kind::by_hand`]: super::kind::Kind::by_hand

use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::model::{DatabaseSpec, Environment, HostKeyChecking, SslMode};

/// What a step kind may use to say how its step is done by hand.
pub struct HandCx<'a> {
    /// The step being described (its secret outputs go to files named after it).
    pub step_id: &'a str,
    /// The environment the page is rendered for; `None` shows `<hosts.NAME>`-style placeholders.
    pub env: Option<&'a Environment>,
    /// The secrets of the page, each with its placeholder and its file.
    pub secrets: &'a Secrets,
}

/// A secret's placeholder in the text (`$NEW_PASSWORD`) and the file that holds it.
#[derive(Default)]
pub struct Secrets {
    /// By the template path (`steps.new_password.value`, `inputs.token`).
    pub by_path: IndexMap<String, SecretFile>,
}

#[derive(Clone)]
pub struct SecretFile {
    pub file: String,
    pub placeholder: String,
    /// Who produces it: `step 2 (new_password)` or `input token`.
    pub from: String,
}

impl Secrets {
    pub fn add(&mut self, path: String, file: String, from: String) {
        let placeholder = format!("${}", file.to_ascii_uppercase());
        self.by_path.insert(
            path,
            SecretFile {
                file,
                placeholder,
                from,
            },
        );
    }
}

impl HandCx<'_> {
    /// The file that holds this step's secret `output`.
    pub fn secret_file(&self, output: &str) -> String {
        let path = format!("steps.{}.{output}", self.step_id);
        self.secrets
            .by_path
            .get(&path)
            .map_or_else(|| file_name(self.step_id, output), |s| s.file.clone())
    }

    /// The placeholder standing for this step's secret `output` in later steps.
    pub fn secret_placeholder(&self, output: &str) -> String {
        format!("${}", self.secret_file(output).to_ascii_uppercase())
    }

    /// The file holding the secret when `text` is exactly one secret's placeholder.
    pub fn file_of(&self, text: &str) -> Option<&str> {
        let t = text.trim();
        self.secrets
            .by_path
            .values()
            .find(|s| s.placeholder == t)
            .map(|s| s.file.as_str())
    }

    /// True when `text` contains a secret's placeholder.
    pub fn mentions_secret(&self, text: &str) -> bool {
        self.secrets
            .by_path
            .values()
            .any(|s| contains_word(text, &s.placeholder))
    }

    /// `ssh [flags] [-p PORT] [-i KEY] [-o …] USER@ADDRESS` for a host of the environment.
    pub fn ssh(&self, host: &str, flags: &str) -> String {
        let mut s = String::from("ssh");
        if !flags.is_empty() {
            s.push(' ');
            s.push_str(flags);
        }
        let Some(spec) = self.env.and_then(|e| e.doc.hosts.get(host)) else {
            let _ = write!(s, " <hosts.{host}>");
            return s;
        };
        if let Some(port) = spec.port {
            let _ = write!(s, " -p {port}");
        }
        if let Some(key) = &spec.key_file {
            let _ = write!(s, " -i {}", sh_word(key));
        }
        if let Some(kh) = &spec.known_hosts {
            let _ = write!(s, " -o UserKnownHostsFile={}", sh_word(kh));
        }
        if spec.host_key_checking == HostKeyChecking::AcceptNew {
            s.push_str(" -o StrictHostKeyChecking=accept-new");
        }
        let user = spec
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        // Quoted like any other word: a host or a user from a file stays one argument.
        let _ = write!(s, " {}", sh_word(&format!("{user}{}", spec.address)));
        s
    }

    /// The AWS CLI options that pick the environment's account and region.
    pub fn aws_options(&self) -> String {
        let Some(aws) = self.env.and_then(|e| e.doc.aws.as_ref()) else {
            return "--region <aws.region>".into();
        };
        let mut s = format!("--region {}", sh_word(&aws.region));
        if let Some(p) = &aws.profile {
            let _ = write!(s, " --profile {}", sh_word(p));
        }
        if let Some(e) = &aws.endpoint {
            let _ = write!(s, " --endpoint-url {}", sh_word(e));
        }
        s
    }

    /// Markdown running `command` on `host` with `env` and `stdin`, as `ssh.exec` would.
    pub fn remote_command(
        &self,
        host: &str,
        command: &str,
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> String {
        let ssh = self.ssh(host, "");
        let command = command.trim_end();
        let heredoc = |s: &mut String| {
            if let Some(input) = stdin {
                let end = heredoc_delimiter(input);
                let _ = write!(s, " <<'{end}'\n{}\n{end}", input.trim_end());
            }
        };
        let mut s = String::new();
        if env.iter().any(|(_, v)| self.mentions_secret(v)) {
            // A secret must not be in the remote command line either: set it in a shell there.
            let _ = write!(
                s,
                "Open a shell on the host:\n\n```sh\n{ssh}\n```\n\n\
                 There, set each variable without it showing (paste the value when asked):\n\n```sh\n"
            );
            for (k, v) in env {
                if self.mentions_secret(v) {
                    let _ = writeln!(s, "read -rs {k} && export {k}    # {v}");
                } else {
                    let _ = writeln!(s, "export {k}={}", sh_quote(v));
                }
            }
            let mut body = command.to_string();
            heredoc(&mut body);
            // A fence no line of the command can close (a line of ``` would end the block and
            // show the rest as Markdown).
            let fence = crate::display::md_fence(&body);
            let _ = write!(s, "```\n\nThen run:\n\n{fence}sh\n{body}\n{fence}\n");
            return s;
        }
        // Plain values go in the remote command, like the command itself.
        let exports: Vec<String> = env
            .iter()
            .map(|(k, v)| {
                let mut q = String::new();
                for c in v.chars() {
                    if matches!(c, '\\' | '"' | '$' | '`') {
                        q.push('\\');
                    }
                    q.push(c);
                }
                format!("{k}=\"{q}\"")
            })
            .collect();
        let script = if exports.is_empty() {
            command.to_string()
        } else {
            format!("export {}\n{command}", exports.join(" "))
        };
        let quoted = sh_quote(&script);
        // A multi-line command reads better starting on its own line.
        let quoted = if script.contains('\n') {
            format!("'\n{}", &quoted[1..])
        } else {
            quoted
        };
        let mut body = format!("{ssh} {quoted}");
        heredoc(&mut body);
        let fence = crate::display::md_fence(&body);
        let _ = write!(s, "{fence}sh\n{body}\n{fence}\n");
        s
    }

    /// Markdown opening psql on `database` of the environment, through an SSH tunnel when it
    /// has `via:`, logging in with `password` typed at psql's prompt (never in a command line).
    pub fn psql_session(
        &self,
        database: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> String {
        /// The local end of the tunnel: away from a local server's 5432.
        const LOCAL_PORT: u16 = 15432;
        let mut s = String::new();
        let Some(db) = self.database(database) else {
            let role = user.map_or_else(|| format!("<databases.{database}.user>"), str::to_string);
            let _ = write!(
                s,
                "Connect to the database `{database}` of the environment (`databases.{database}` in \
                 environments.yaml). When it has `via: HOST`, open a tunnel first and connect to \
                 127.0.0.1 port {LOCAL_PORT}:\n\n```sh\n\
                 ssh -N -L {LOCAL_PORT}:<databases.{database}.host>:<databases.{database}.port> <hosts.HOST> &\n\
                 psql 'host=127.0.0.1 port={LOCAL_PORT} dbname=<databases.{database}.name> user={role}'\n```\n\n"
            );
            s.push_str(&password_hint(&role, password, None));
            return s;
        };
        let role = user.unwrap_or(&db.user);
        let (host, port) = match &db.via {
            Some(via) => {
                let tunnel = self.ssh(
                    via,
                    &format!(
                        "-N -L {}",
                        sh_word(&format!("{LOCAL_PORT}:{}:{}", db.host, db.port))
                    ),
                );
                let _ = write!(
                    s,
                    "Open a tunnel to the database through `{via}` (stop it with `kill %1` at the \
                     end of the step):\n\n```sh\n{tunnel} &\n```\n\n"
                );
                ("127.0.0.1".to_string(), LOCAL_PORT)
            }
            None => (db.host.clone(), db.port),
        };
        let sslmode = match db.sslmode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        };
        let mut conninfo = format!(
            "host={host} port={port} dbname={} user={role} sslmode={sslmode}",
            db.name
        );
        if let Some(ca) = &db.ca_file {
            let _ = write!(conninfo, " sslrootcert={ca}");
        }
        let _ = write!(s, "```sh\npsql {}\n```\n\n", sh_quote(&conninfo));
        let parameter = if user.is_none_or(|u| u == db.user) {
            db.password_parameter.as_deref()
        } else {
            None
        };
        s.push_str(&password_hint(role, password, parameter));
        s
    }

    /// A database of the environment.
    pub fn database(&self, name: &str) -> Option<&DatabaseSpec> {
        self.env.and_then(|e| e.doc.databases.get(name))
    }
}

/// Where psql gets the password of `role`: pasted at its prompt, or found the libpq way.
fn password_hint(role: &str, password: Option<&str>, parameter: Option<&str>) -> String {
    match (password, parameter) {
        (Some(p), _) => format!("psql asks for the password of `{role}`: paste `{p}`.\n\n"),
        (None, Some(param)) => format!(
            "psql asks for the password of `{role}`: paste the value of SSM parameter `{param}` \
             (`aws ssm get-parameter --with-decryption --name {}`).\n\n",
            sh_word(param)
        ),
        (None, None) => format!(
            "psql finds the password of `{role}` itself: `PGPASSWORD`, the file `PGPASSFILE` \
             names or `~/.pgpass` (mode 0600); without one it logs in without a password.\n\n"
        ),
    }
}

/// `word` quoted for a POSIX shell when it needs it.
pub fn sh_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,~".contains(c));
    // A leading `~` must stay unquoted to expand; it is plain anyway.
    if plain {
        word.to_string()
    } else {
        sh_quote(word)
    }
}

/// `'…'` quoting for a POSIX shell.
pub use crate::template::sh_quote;

/// A `<<'EOF'` delimiter that does not occur as a line of `text`.
pub fn heredoc_delimiter(text: &str) -> String {
    let mut d = "EOF".to_string();
    let mut n = 1;
    while text.lines().any(|l| l.trim() == d) {
        d = format!("EOF{n}");
        n += 1;
    }
    d
}

pub(crate) fn contains_word(text: &str, placeholder: &str) -> bool {
    text.match_indices(placeholder).any(|(i, _)| {
        !text[i + placeholder.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
    })
}

/// The file holding a step's secret output: the step's id for its `value`.
pub fn file_name(step: &str, output: &str) -> String {
    if output == "value" {
        step.to_string()
    } else {
        format!("{step}_{output}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_word("/opt/musehub"), "/opt/musehub");
        assert_eq!(sh_word("~/.ssh/key.pem"), "~/.ssh/key.pem");
        assert_eq!(sh_word("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(heredoc_delimiter("a\nEOF\nb"), "EOF1");
    }

    #[test]
    fn a_placeholder_is_a_whole_word() {
        assert!(contains_word("--value $NEW b", "$NEW"));
        assert!(!contains_word("--value $NEW_PASSWORD", "$NEW"));
    }
}
