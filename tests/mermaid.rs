//! The flowcharts of `plan --format md` and `runbook docs` parse with Mermaid's own parser:
//! the `mermaid` package from npm (what GitHub draws with), run by node in a jsdom window
//! (`tests/mermaid/parse.mjs`), installed on first use under the target directory. A label
//! made of hostile text (quotes, brackets, HTML, control characters) parses too, and a
//! secret given to the plan is not in its diagram.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Test, repo};

/// Pinned: the parser GitHub uses changes with its version. jsdom 25 still runs on the node
/// of Debian 12 (18).
const PACKAGES: &[(&str, &str)] = &[("mermaid", "11.17.2"), ("jsdom", "25.0.1")];

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The directory holding `node_modules` and the parse script, installed when missing (once:
/// a lock beside it, a marker naming the packages once npm is done).
fn parser_dir() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).unwrap();
    let dir = base.join("mermaid");
    let lock = fs::File::create(base.join("mermaid.lock")).unwrap();
    lock.lock().unwrap();
    let want: Vec<String> = PACKAGES.iter().map(|(p, v)| format!("{p}@{v}")).collect();
    let want = want.join(" ");
    let marker = dir.join(".runbook-ready");
    if !fs::read_to_string(&marker).is_ok_and(|m| m == want) {
        if !have("node") || !have("npm") {
            eprintln!("mermaid parser: installing nodejs and npm with apt-get");
            run(Command::new("apt-get").args(["update", "-q"]));
            run(Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "nodejs",
                    "npm",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"));
        }
        eprintln!("mermaid parser: npm install {want} into {}", dir.display());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let deps: serde_json::Map<String, serde_json::Value> = PACKAGES
            .iter()
            .map(|(p, v)| (p.to_string(), serde_json::Value::from(*v)))
            .collect();
        let package =
            serde_json::json!({ "private": true, "type": "module", "dependencies": deps });
        fs::write(dir.join("package.json"), package.to_string()).unwrap();
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir));
        fs::write(&marker, &want).unwrap();
    }
    // The script beside its node_modules (an ES module finds packages from where it is).
    fs::copy(
        repo().join("tests/mermaid/parse.mjs"),
        dir.join("parse.mjs"),
    )
    .unwrap();
    dir
}

/// Parses every Mermaid block of `files`; panics naming each one that does not parse, or a
/// file without one.
fn assert_parse(files: &[PathBuf]) {
    let dir = parser_dir();
    let out = run(Command::new("node")
        .arg(dir.join("parse.mjs"))
        .args(files)
        .current_dir(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let bad: Vec<&serde_json::Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(bad.is_empty(), "diagrams that do not parse: {bad:#?}");
    for f in files {
        let f = f.to_string_lossy();
        let n = results.iter().filter(|r| r["file"] == *f).count();
        assert_eq!(n, 1, "{f}: {n} diagrams, not one");
    }
    assert!(
        results.iter().all(|r| r["type"] == "flowchart-v2"),
        "{results:#?}"
    );
}

fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "environments")
        .collect();
    names.sort();
    names
}

fn shipped() -> Test {
    let t = Test::new();
    for e in fs::read_dir(repo().join("runbooks")).unwrap() {
        let f = e.unwrap().path();
        fs::copy(&f, t.runbooks_dir().join(f.file_name().unwrap())).unwrap();
    }
    t
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_diagrams_of_every_shipped_runbook_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in shipped_names() {
        // The committed pages (tests/docs.rs keeps them equal to `runbook docs`).
        files.push(repo().join(format!("docs/runbooks/{name}.md")));
        let run = shipped()
            .args(&["plan", &name, "--env", "staging", "--format", "md"])
            .run();
        run.assert_code(0);
        files.push(write(tmp.path(), &format!("plan-{name}.md"), &run.stdout));
    }
    assert!(files.len() >= 16, "{files:?}");
    assert_parse(&files);
}

/// Text a label must survive: quotes, Mermaid's brackets and arrows, HTML, an entity, a
/// Markdown code span, a comment marker, a bidi override and an escape sequence.
const HOSTILE: &str =
    r#"a "quoted" [box] (round) {curly} --> |pipe| <b>bold</b> &amp; #35; `code` %% ; end"#;

const CHILD: &str = "version: 1
name: child
summary: Runs inside another
steps:
  - id: gen
    generate: { format: hex }
";

#[test]
fn hostile_labels_parse_and_hold_no_secret() {
    let yaml = format!(
        r#"version: 1
name: hostile
summary: Labels made of everything a label must not break on
inputs:
  token:
    description: A secret
    secret: true
  note:
    description: Any text, given on the command line
    default: none
steps:
  - id: gen
    title: '{HOSTILE}'
    generate: {{ format: hex }}
  - id: store
    title: "{{{{ inputs.note }}}}"
    confirm: 'store "{{{{ inputs.token }}}}"? {HOSTILE}'
    when: '"x" in "{{{{ inputs.token }}}}"'
    ssm.put:
      name: /app/x
      value: "{{{{ inputs.token }}}}"
    on_failure: undo
  - id: next
    title: subgraph end
    runbook.run: {{ name: child }}
    on_failure: continue
rollback:
  - id: undo
    title: '{HOSTILE}'
    ssm.put:
      name: /app/x
      value: old
      overwrite: true
"#
    );
    let canary = "Canary-Token-7f3a9c1e5b";
    let tmp = tempfile::tempdir().unwrap();
    let plan = Test::new()
        .with_repo_environments()
        .runbook("hostile", &yaml)
        .runbook("child", CHILD)
        .args(&[
            "plan",
            "hostile",
            "--env",
            "staging",
            "--format",
            "md",
            "--input",
            "note=control \u{1b}[31m red \u{202e} bidi\nnext \"line\"] end",
        ])
        .env("RUNBOOK_INPUT_TOKEN", canary)
        .run();
    plan.assert_code(0);
    assert!(!plan.stdout.contains(canary), "{}", plan.stdout);
    // The gate's label reads the secret, masked as everywhere in the plan.
    assert!(
        plan.stdout.contains(&format!(
            "{{\"gate: store #34;{}#34;?",
            runbook::steps::MASK
        )),
        "{}",
        plan.stdout
    );
    let docs = Test::new()
        .with_repo_environments()
        .runbook("hostile", &yaml)
        .runbook("child", CHILD)
        .args(&["docs", "hostile"])
        .run();
    docs.assert_code(0);
    for text in [&plan.stdout, &docs.stdout] {
        let block = text
            .split("```mermaid\n")
            .nth(1)
            .and_then(|b| b.split("\n```").next())
            .expect("a mermaid block");
        // Every label is one quoted string: no quote, control character or HTML of the text.
        for line in block.lines() {
            assert!(
                !line.contains('\u{1b}') && !line.contains('\u{202e}'),
                "{line}"
            );
            assert!(!line.contains("<b>") && !line.contains('`'), "{line}");
            assert!(line.matches('"').count() % 2 == 0, "{line}");
        }
    }
    let files = [
        write(tmp.path(), "plan.md", &plan.stdout),
        write(tmp.path(), "docs.md", &docs.stdout),
    ];
    assert_parse(&files);
}
