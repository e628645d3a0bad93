//! Step kinds: one module per kind behind the [`Kind`] trait (in `kind.rs`), registered in
//! [`KINDS`].
//!
//! A kind owns its typed parameters (which also feed the JSON Schema), its check-time
//! validation, how it describes itself in a plan, how it is done by hand, what preflight can
//! check for it, and how it runs. The engine, the checker and the UI only see the object-safe
//! [`DynKind`], through [`KINDS`] or a step's kind; adding a kind touches its file and
//! [`KINDS`]. This file is only the module list and the registry: kinds import `kind.rs`.

pub mod common;
pub mod fanout;
pub mod generate;
pub mod hand;
pub mod http;
pub mod kind;
pub mod manual;
pub mod psql;
pub mod report;
pub mod runbook;
pub mod ssh;
pub mod ssm;

use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// Mask in plans: a value that is a secret.
pub use crate::secret::MASK;
pub use common::{error_chain, expand_tilde, first_line, whole_text};
/// The CAs of a `ca_file`, read as the HTTP kinds read it (for a post made outside a step).
pub(crate) use http::client::read_ca;
pub use kind::*;

/// Every step kind this binary knows, in the order `runbook schema` and docs list them.
pub static KINDS: &[&dyn DynKind] = &[
    &Adapter::<generate::Generate>(PhantomData),
    &Adapter::<manual::ManualConfirm>(PhantomData),
    &Adapter::<ssm::Get>(PhantomData),
    &Adapter::<ssm::Put>(PhantomData),
    &Adapter::<ssh::SshExec>(PhantomData),
    &Adapter::<psql::Psql>(PhantomData),
    &Adapter::<http::HttpCheck>(PhantomData),
    &Adapter::<http::request::HttpRequest>(PhantomData),
    &Adapter::<runbook::RunRunbook>(PhantomData),
    &Adapter::<report::ReportWrite>(PhantomData),
];

/// Take out of this process's environment, before any thread starts, the secrets kinds read
/// from it (`PGPASSWORD`), so that no child process (an SSH master) inherits them.
pub fn take_inherited_secrets() {
    psql::take_pgpassword();
}

pub fn find_kind(name: &str) -> Option<&'static dyn DynKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// A step's schema is the union of the kinds' (`model` holds the file formats and knows no kind).
impl JsonSchema for crate::model::StepDoc {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        step_schema(g)
    }
}

/// The JSON Schema of one step: the common fields plus exactly one kind key.
pub fn step_schema(g: &mut SchemaGenerator) -> Schema {
    // The common fields are inlined in every variant: `additionalProperties: false` only sees
    // properties declared next to it.
    let common = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<crate::model::StepCommon>();
    let common_props = common.get("properties").cloned().unwrap_or_default();
    let variants: Vec<serde_json::Value> = KINDS
        .iter()
        .map(|k| {
            let mut props = common_props.as_object().cloned().unwrap_or_default();
            let mut params = k.params_schema(g).to_value();
            if let Some(obj) = params.as_object_mut() {
                obj.insert("description".into(), k.summary().into());
            }
            props.insert(k.name().into(), params);
            serde_json::json!({
                "title": k.name(),
                "type": "object",
                "properties": props,
                "required": ["id", k.name()],
                "additionalProperties": false,
            })
        })
        .collect();
    json_schema!({ "oneOf": variants })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hosts each kind says it reaches over SSH: what a gate opens early.
    #[test]
    fn the_ssh_hosts_of_each_kind() {
        let yaml = "
version: 1
environments:
  e:
    hosts:
      a: { address: 10.0.0.1 }
      b: { address: 10.0.0.2 }
      c: { address: 10.0.0.3 }
    groups:
      web: [b, c]
    databases:
      main: { host: 127.0.0.1, name: m, user: u, via: a }
      direct: { host: db.example, name: m, user: u }
";
        let mut problems = Vec::new();
        let envs = crate::check::load_environments(
            std::path::Path::new("environments.yaml"),
            yaml.to_string(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let env = &envs.list[0];
        let hosts = |kind: &str, params: &str| {
            let node = crate::load::yaml::parse(params).unwrap();
            find_kind(kind).unwrap().ssh_hosts(&node, env)
        };
        assert_eq!(hosts("ssh.exec", "{ host: a, command: x }"), ["a"]);
        assert_eq!(hosts("ssh.exec", "{ hosts: web, command: x }"), ["b", "c"]);
        assert_eq!(
            hosts("ssh.exec", "{ hosts: [c, a, c], command: x }"),
            ["c", "a"]
        );
        assert_eq!(
            hosts("psql", "{ database: main, password: p, sql: select 1 }"),
            ["a"]
        );
        assert!(hosts("psql", "{ database: direct, password: p, sql: select 1 }").is_empty());
        assert_eq!(hosts("http.check", "{ url: 'http://x/', via: a }"), ["a"]);
        assert_eq!(
            hosts("http.check", "{ url: 'http://x/', via: web }"),
            ["b", "c"]
        );
        assert_eq!(
            hosts("http.check", "{ url: 'http://x/', via: [c, b] }"),
            ["c", "b"]
        );
        assert!(hosts("http.check", "{ url: 'http://x/' }").is_empty());
        assert!(hosts("generate", "{ format: hex }").is_empty());
    }

    /// Every method of every kind of `KINDS`, on the kind's own example: what the rest of the
    /// program asks of a kind, asked of each (a new kind is covered by being registered).
    #[tokio::test]
    async fn every_kind_answers_every_method() {
        let yaml = "
version: 1
environments:
  full:
    aws: { region: us-east-1 }
    hosts:
      app: { address: 10.0.0.1 }
    databases:
      main: { host: 127.0.0.1, name: m, user: u, via: app }
  bare: {}
";
        let mut problems = Vec::new();
        let envs = crate::check::load_environments(
            std::path::Path::new("environments.yaml"),
            yaml.to_string(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let (full, bare) = (&envs.list[0], &envs.list[1]);
        assert!(!KINDS.is_empty());
        for kind in KINDS {
            let name = kind.name();
            assert_eq!(find_kind(name).map(DynKind::name), Some(name));
            assert!(!kind.summary().is_empty(), "{name}");
            let params = crate::load::yaml::parse(kind.example())
                .unwrap_or_else(|e| panic!("{name}: example: {}", e.message));

            let mut g = SchemaGenerator::default();
            let schema = kind.params_schema(&mut g);
            assert!(schema.as_object().is_some(), "{name}: {schema:?}");
            let text = format!("{} {:?}", schema.to_value(), g.definitions());
            for field in kind.shell_fields() {
                assert!(
                    text.contains(&format!("\"{field}\"")),
                    "{name}: shell field `{field}` is not a parameter"
                );
            }
            for (field, _) in kind.server_logged() {
                assert!(
                    text.contains(&format!("\"{field}\"")),
                    "{name}: server-logged field `{field}` is not a parameter"
                );
            }
            // A URL is in every access log on its way: a kind with one says so.
            if text.contains("\"url\"") {
                assert!(
                    kind.server_logged().contains(&("url", Logged::Url)),
                    "{name}: its `url` is not declared as logged by the server"
                );
            }
            let _ = kind.unattended(&params);
            assert_eq!(
                kind.instructions(&params).is_some(),
                kind.interactive(&params),
                "{name}: a step that needs a person says what they are to do"
            );

            let mut cx = CheckCx {
                problems: Vec::new(),
                environments: std::slice::from_ref(full),
                params: &params,
                secret_refs: &|_| false,
            };
            let outputs = kind
                .check(&params, &mut cx)
                .unwrap_or_else(|e| panic!("{name}: example does not parse: {e:?}"));
            assert!(cx.problems.is_empty(), "{name}: {:?}", cx.problems);

            let _ = kind.interactive(&params);
            let _ = kind.idempotent(&params);
            let (describe, effect) = kind.describe(&params).expect("describe");
            assert!(!describe.is_empty(), "{name}");
            if effect == Effect::ReadOnly || effect == Effect::Local {
                assert!(
                    kind.idempotent(&params),
                    "{name}: {effect:?} but not idempotent"
                );
                // A step that reads only may say so.
                assert_eq!(kind.may_be_read_only(&params), Ok(()), "{name}");
            }
            // A refusal names what the step changes.
            if let Err(what) = kind.may_be_read_only(&params) {
                assert_eq!(effect, Effect::Changes(what), "{name}");
            }

            let secrets = hand::Secrets::default();
            let hand = hand::HandCx {
                step_id: "s",
                env: Some(full),
                secrets: &secrets,
            };
            if let Some(text) = kind.by_hand(&params, &hand) {
                assert!(!text.trim().is_empty(), "{name}");
            }

            let hosts = kind.ssh_hosts(&params, full);
            assert!(
                hosts.iter().all(|h| full.doc.hosts.contains_key(h)),
                "{name}: {hosts:?}"
            );
            // Hosts unknown to `bare`: nothing is opened, nothing is reaped.
            let resources = Resources::default();
            kind.warm_up(&params, bare, &resources);
            kind.before_run(bare).await;
            kind.close(&resources).await;

            assert_eq!(kind.uses_aws(), name.starts_with("ssm."), "{name}");
            // What reaches the environment's AWS account or hosts needs it.
            if kind.uses_aws() || !hosts.is_empty() {
                assert!(kind.needs_environment(&params), "{name}");
            }
            match kind.nested_runbook(&params) {
                Some(n) => {
                    assert_eq!(name, "runbook.run");
                    assert_eq!(n.name.as_str(), params.get("name").and_then(|n| n.as_str()));
                    let field = kind.runs_runbook_named_by().expect(name);
                    assert_eq!(
                        params.get(field).map(|f| f as *const _),
                        Some(n.name as *const _)
                    );
                }
                None => {
                    assert_ne!(name, "runbook.run");
                    assert_eq!(kind.runs_runbook_named_by(), None, "{name}");
                }
            }
            // What a step writes for good is named by one of its parameters.
            match kind.writes_named_by() {
                Some(field) => {
                    assert_eq!(name, "ssm.put");
                    assert!(
                        params.get(field).is_some_and(|n| n.as_str().is_some()),
                        "{name}"
                    );
                }
                None => assert_ne!(name, "ssm.put"),
            }

            let mut needs = Needs::new(&|_| true);
            let need_cx = NeedCx {
                step_id: "s",
                params: &params,
                env: full,
                judge: true,
            };
            kind.preflight(&params, &need_cx, &mut needs);
            let gathered = needs.gathered();
            assert!(gathered.skipped.is_empty(), "{name}");
            let stages: Vec<Stage> = gathered.needs.iter().map(|n| n.stage()).collect();
            assert_eq!(
                stages.contains(&Stage::Credentials),
                kind.uses_aws(),
                "{name}: {stages:?}"
            );
            for host in &hosts {
                assert!(
                    gathered
                        .needs
                        .iter()
                        .any(|n| n.stage() == Stage::Host && &n.key() == host),
                    "{name}: preflight does not log in to `{host}`"
                );
            }

            // In an environment with nothing in it (no AWS, hosts or databases), with no one
            // to ask and no runbook to nest: only a local kind runs, every other fails
            // plainly, at once and offline.
            let progress = |_: &str| {};
            let redactor = crate::secret::Redactor::new();
            let add_secret = |s: &str| redactor.try_add(s);
            let holds_secret = |s: &str| !redactor.spans(s).is_empty();
            let run = RunCx {
                env: bare,
                step_id: "s",
                prompter: &Nobody,
                resources: &resources,
                progress: &progress,
                note: &progress,
                warn: &progress,
                add_secret: &add_secret,
                holds_secret: &holds_secret,
                assume_yes: false,
                nested: None,
                record: None,
            };
            let ran =
                tokio::time::timeout(std::time::Duration::from_secs(10), kind.run(&params, &run))
                    .await
                    .unwrap_or_else(|_| panic!("{name}: run did not end"));
            match ran {
                Ok(outs) => {
                    assert_eq!(effect, Effect::Local, "{name} ran with nothing to run on");
                    let names: Vec<&str> = outs.iter().map(|o| o.name.as_str()).collect();
                    let declared: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                    assert_eq!(names, declared, "{name}");
                }
                Err(e) => assert!(!e.message.is_empty(), "{name}"),
            }
        }
    }
}
