//! `runbook docs`: a runbook rendered as Markdown a person can follow by hand, with no secret
//! value in it. Each step kind says how to do its work without the tool ([`Kind::by_hand`]);
//! this module lays out the page, the placeholders and the shell quoting the kinds share.
//!
//! [`Kind::by_hand`]: crate::steps::Kind::by_hand

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::{Object, ObjectRepr};

use crate::engine::render_node;
use crate::model::{DatabaseSpec, Environment, OnFailure, Runbook, SslMode, Step};
use crate::steps::Secrecy;
use crate::template;

/// What a step kind may use to say how its step is done by hand.
pub struct HandCx<'a> {
    /// The step being described (its secret outputs go to files named after it).
    pub step_id: &'a str,
    /// The environment the page is rendered for; `None` shows `<hosts.NAME>`-style placeholders.
    pub env: Option<&'a Environment>,
    secrets: &'a Secrets,
}

/// A secret's placeholder in the text (`$NEW_PASSWORD`) and the file that holds it.
#[derive(Default)]
struct Secrets {
    /// By the template path (`steps.new_password.value`, `inputs.token`).
    by_path: IndexMap<String, SecretFile>,
}

#[derive(Clone)]
struct SecretFile {
    file: String,
    placeholder: String,
    /// Who produces it: `step 2 (new_password)` or `input token`.
    from: String,
}

impl Secrets {
    fn add(&mut self, path: String, file: String, from: String) {
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
        if spec.host_key_checking == crate::model::HostKeyChecking::AcceptNew {
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
    pub fn psql_session(&self, database: &str, user: Option<&str>, password: &str) -> String {
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
            let _ = write!(
                s,
                "psql asks for the password of `{role}`: paste `{password}`.\n\n"
            );
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
        let _ = write!(
            s,
            "```sh\npsql {}\n```\n\npsql asks for the password of `{role}`: paste `{password}`.\n\n",
            sh_quote(&conninfo)
        );
        s
    }

    /// A database of the environment.
    pub fn database(&self, name: &str) -> Option<&DatabaseSpec> {
        self.env.and_then(|e| e.doc.databases.get(name))
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

fn contains_word(text: &str, placeholder: &str) -> bool {
    text.match_indices(placeholder).any(|(i, _)| {
        !text[i + placeholder.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
    })
}

fn file_name(step: &str, output: &str) -> String {
    if output == "value" {
        step.to_string()
    } else {
        format!("{step}_{output}")
    }
}

/// A value only a run can know, shown by its name: `<steps.image.json[0].ID>`, or `$NAME` for a
/// secret. Reading a field or an index of it gives a longer name, so any template renders.
#[derive(Debug)]
struct Placeholder {
    path: String,
    secret: Option<String>,
}

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let path = match key.as_str() {
            Some(k) => format!("{}.{k}", self.path),
            None => format!("{}[{key}]", self.path),
        };
        Some(Value::from_object(Placeholder {
            path,
            secret: self.secret.clone(),
        }))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.secret {
            Some(p) => f.write_str(p),
            None => write!(f, "<{}>", self.path),
        }
    }
}

fn placeholder(path: String, secret: Option<String>) -> Value {
    Value::from_object(Placeholder { path, secret })
}

/// The template context of the page: the environment's vars (or placeholders), and
/// placeholders for inputs and step outputs.
fn context(runbook: &Runbook, env: Option<&Environment>, secrets: &Secrets) -> Value {
    let secret_of = |path: &str| secrets.by_path.get(path).map(|s| s.placeholder.clone());
    let inputs: BTreeMap<String, Value> = runbook
        .doc
        .inputs
        .keys()
        .map(|n| {
            let path = format!("inputs.{n}");
            (n.clone(), placeholder(path.clone(), secret_of(&path)))
        })
        .collect();
    let steps: BTreeMap<String, Value> = runbook
        .all_steps()
        .map(|s| {
            let outs: BTreeMap<String, Value> = s
                .outputs
                .iter()
                .map(|o| {
                    let path = format!("steps.{}.{}", s.id(), o.name);
                    (o.name.clone(), placeholder(path.clone(), secret_of(&path)))
                })
                .collect();
            (s.id().to_string(), Value::from_object(outs))
        })
        .collect();
    let env = match env {
        Some(e) => template::value(e.template_vars()),
        None => placeholder("env".into(), None),
    };
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    root.insert("inputs".into(), Value::from_object(inputs));
    root.insert("steps".into(), Value::from_object(steps));
    root.insert("env".into(), env);
    Value::from_object(root)
}

fn secrets_of(runbook: &Runbook) -> Secrets {
    let mut secrets = Secrets::default();
    for (name, spec) in &runbook.doc.inputs {
        if spec.secret {
            secrets.add(
                format!("inputs.{name}"),
                name.clone(),
                format!("input `{name}`"),
            );
        }
    }
    for (i, s) in runbook.all_steps().enumerate() {
        let label = if s.rollback {
            format!("rollback step `{}`", s.id())
        } else {
            format!("step {} (`{}`)", i + 1, s.id())
        };
        for o in &s.outputs {
            if o.secrecy != Secrecy::Public {
                secrets.add(
                    format!("steps.{}.{}", s.id(), o.name),
                    file_name(s.id(), &o.name),
                    label.clone(),
                );
            }
        }
    }
    secrets
}

/// The runbook as Markdown, for the environment `env` or with its values as placeholders.
pub fn render(runbook: &Runbook, env: Option<&Environment>) -> String {
    let secrets = secrets_of(runbook);
    let ctx = context(runbook, env, &secrets);
    let d = &runbook.doc;
    let mut o = String::new();
    let _ = writeln!(o, "# {}: {}\n", d.name, d.summary);
    let how = match env {
        Some(e) => format!("runbook docs {} --env {}", d.name, e.name),
        None => format!("runbook docs {}", d.name),
    };
    let _ = writeln!(
        o,
        "<!-- Generated from runbooks/{}.yaml by `{how}`. Do not edit by hand. -->\n",
        d.name
    );
    let mut facts = Vec::new();
    if let Some(e) = env {
        let protected = if e.doc.protected { " (protected)" } else { "" };
        let desc = e
            .doc
            .description
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        facts.push(("Environment", format!("`{}`{protected}{desc}", e.name)));
    }
    if let Some(r) = &d.rotation {
        facts.push(("Rotation", r.clone()));
    }
    if let Some(i) = &d.impact {
        facts.push(("Impact of compromise", i.clone()));
    }
    for (k, v) in facts {
        let _ = writeln!(o, "- **{k}:** {v}");
    }
    o.push('\n');
    if let Some(desc) = &d.description {
        let _ = writeln!(o, "{}\n", desc.trim_end());
    }
    let _ = writeln!(
        o,
        "It is best run with `runbook run {} --env ENV`, which does all of this with a plan, gates, \
         rollback and no secret ever shown. This page is for doing it by hand.\n",
        d.name
    );

    if !d.inputs.is_empty() {
        o.push_str("## Inputs\n\n");
        for (name, i) in &d.inputs {
            let mut extra = Vec::new();
            if let Some(c) = &i.choices {
                let c: Vec<String> = c.iter().map(|c| format!("`{c}`")).collect();
                extra.push(format!("one of {}", c.join(", ")));
            }
            if let Some(def) = &i.default {
                extra.push(format!("default `{def}`"));
            }
            if i.secret {
                extra.push(format!(
                    "secret: keep it in the file `{name}`, shown below as `${}`",
                    name.to_ascii_uppercase()
                ));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join("; "))
            };
            let _ = writeln!(o, "- `{name}`: {}{extra}", i.description);
        }
        let _ = writeln!(
            o,
            "\n`<inputs.NAME>` below stands for the value you chose.\n"
        );
    }

    o.push_str("## Before you start\n\n");
    if env.is_none() {
        o.push_str(
            "Values of the environment appear as `<env.NAME>`, its hosts as `<hosts.NAME>` and its \
             AWS region as `<aws.region>`: take them from `runbooks/environments.yaml`, or render \
             this page with `--env ENV`.\n\n",
        );
    } else if env.is_some_and(|e| e.doc.protected) {
        o.push_str(
            "This is a protected environment: have a second person follow along before the first \
             change.\n\n",
        );
    }
    o.push_str(
        "`<steps.ID.OUTPUT>` stands for what an earlier step printed. Secret values never appear \
         here, and must never be typed into a command line (other users see command lines in \
         `ps`, and shells keep them in their history). Work in a directory only you can read, \
         where each secret is kept in a file:\n\n",
    );
    let _ = writeln!(
        o,
        "```sh\numask 077 && mkdir -p ~/runbook-{0} && cd ~/runbook-{0}\n```\n",
        d.name
    );
    if !secrets.by_path.is_empty() {
        o.push_str("| placeholder | file | made by |\n|---|---|---|\n");
        for s in secrets.by_path.values() {
            let _ = writeln!(o, "| `{}` | `{}` | {} |", s.placeholder, s.file, s.from);
        }
        o.push('\n');
    }

    o.push_str("## Steps\n\n");
    for (i, step) in runbook.steps.iter().enumerate() {
        render_step(
            &mut o,
            &format!("{}", i + 1),
            step,
            runbook,
            env,
            &secrets,
            &ctx,
        );
    }
    if !runbook.rollback.is_empty() {
        o.push_str("## If verification fails\n\n");
        o.push_str(
            "Only when a step above sends you here: start at the rollback step it names and do \
             every step from there to the end, in order. The rotation has then failed: say so \
             in the incident or change record.\n\n",
        );
        for (i, step) in runbook.rollback.iter().enumerate() {
            render_step(
                &mut o,
                &format!("R{}", i + 1),
                step,
                runbook,
                env,
                &secrets,
                &ctx,
            );
        }
    }
    if !secrets.by_path.is_empty() {
        let files: Vec<&str> = secrets.by_path.values().map(|s| s.file.as_str()).collect();
        let _ = writeln!(
            o,
            "## When you are done\n\nDelete the files that hold secrets:\n\n```sh\nrm -f -- {}\n```",
            files.join(" ")
        );
    }
    while o.ends_with("\n\n") {
        o.pop();
    }
    o
}

fn render_step(
    o: &mut String,
    number: &str,
    step: &Step,
    runbook: &Runbook,
    env: Option<&Environment>,
    secrets: &Secrets,
    ctx: &Value,
) {
    let render = |s: &str| template::render(s, ctx).unwrap_or_else(|_| s.to_string());
    let rendered = render_node(&step.params, ctx).unwrap_or_else(|_| step.params.clone());
    let describe = step
        .kind
        .describe(&rendered)
        .map_or_else(|_| step.kind.name().to_string(), |(d, _)| d);
    // A heading has one line: a longer command is whole in the step's text below.
    let describe = match crate::steps::first_line(&describe) {
        (first, 0) => first.to_string(),
        (first, _) => format!("{first} …"),
    };
    let title = step.common.title.as_deref().map_or_else(
        || {
            let mut c = describe.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        },
        render,
    );
    let _ = writeln!(o, "### {number}. {title} (`{}`)\n", step.id());
    if let Some(when) = &step.common.when {
        let _ = writeln!(
            o,
            "**Only if** `{}`; otherwise skip this step.\n",
            template::strip_braces(when)
        );
    }
    if let Some(gate) = &step.common.confirm {
        let _ = writeln!(
            o,
            "**Stop and confirm:** {} Go on only if the answer is yes.\n",
            render(gate)
        );
    }
    let cx = HandCx {
        step_id: step.id(),
        env,
        secrets,
    };
    match step.kind.by_hand(&rendered, &cx) {
        Some(text) => {
            let _ = writeln!(o, "{}\n", text.trim_end());
        }
        None => {
            let _ = writeln!(o, "Do: {describe}.\n");
        }
    }
    if let Some(t) = &step.common.timeout {
        let _ = writeln!(o, "Give it at most {}.\n", humantime::format_duration(t.0));
    }
    if let Some(r) = &step.common.retry {
        let _ = writeln!(
            o,
            "If it fails, try again: {} attempts in all, {} apart.\n",
            r.attempts,
            humantime::format_duration(r.delay.0)
        );
    }
    match &step.common.on_failure {
        Some(OnFailure::Rollback(target)) => {
            let n = runbook
                .rollback
                .iter()
                .position(|s| s.id() == target)
                .map_or_else(String::new, |i| format!("R{} ", i + 1));
            let _ = writeln!(
                o,
                "**If this step fails:** go to [If verification fails](#if-verification-fails) \
                 and start at {n}(`{target}`).\n"
            );
        }
        Some(OnFailure::Continue) => {
            o.push_str("If this step fails, note it and go on.\n\n");
        }
        Some(OnFailure::Abort) | None => {}
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
    fn placeholders_render_any_path() {
        let ctx = Value::from_object(BTreeMap::from([(
            "steps".to_string(),
            placeholder("steps".into(), None),
        )]));
        assert_eq!(
            template::render("{{ steps.image.json[0].ID }}", &ctx).unwrap(),
            "<steps.image.json[0].ID>"
        );
        let secret = Value::from_object(BTreeMap::from([(
            "x".to_string(),
            placeholder("inputs.x".into(), Some("$X".into())),
        )]));
        assert_eq!(template::render("a {{ x }} b", &secret).unwrap(), "a $X b");
    }

    #[test]
    fn a_placeholder_is_a_whole_word() {
        assert!(contains_word("--value $NEW b", "$NEW"));
        assert!(!contains_word("--value $NEW_PASSWORD", "$NEW"));
    }
}
