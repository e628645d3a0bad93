//! The architecture's invariants, enforced as absences: things that must not appear in the
//! source tree. Each test names the rule in ARCHITECTURE.md it guards.

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/`, as (path relative to the crate, text).
fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    sources(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Lines that are code, not comments: a rule about imports or names is about what compiles.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let t = l.trim_start();
        (!t.starts_with("//")).then_some((i + 1, l))
    })
}

fn offences(
    files: &[(String, String)],
    applies: impl Fn(&str) -> bool,
    bad: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| applies(p)) {
        for (n, line) in code_lines(text) {
            if let Some(what) = bad(line) {
                found.push(format!("{path}:{n}: {what}: {}", line.trim()));
            }
        }
    }
    found
}

/// The engine, the plan, `check` and loading talk to no outside system: only step kinds do.
#[test]
fn the_engine_plan_check_and_load_import_no_client_library() {
    const CLIENTS: &[&str] = &[
        "aws_sdk",
        "aws_config",
        "openssh",
        "tokio_postgres",
        "reqwest",
    ];
    let files = src_files();
    let core = |p: &str| {
        p.starts_with("src/engine/")
            || p.starts_with("src/load/")
            || p.starts_with("src/plan")
            || p.starts_with("src/check")
    };
    let found = offences(&files, core, |line| {
        CLIENTS
            .iter()
            .find(|c| line.contains(*c))
            .map(|c| format!("uses `{c}`"))
    });
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// "One or a list" and every other choice between shapes is written out, with an error that
/// says what was expected: serde's `untagged` says only "data did not match any variant".
#[test]
fn no_untagged_enum() {
    let files = src_files();
    let found = offences(
        &files,
        |_| true,
        |line| line.contains("untagged").then(|| "`untagged`".to_string()),
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// `KINDS` is the only registry: outside `src/steps/`, no code names a step kind, neither as a
/// string nor through the module that implements it.
#[test]
fn no_kind_name_outside_steps() {
    let files = src_files();
    let names: Vec<&str> = runbook::steps::KINDS.iter().map(|k| k.name()).collect();
    assert!(names.len() >= 7, "KINDS lists {names:?}");
    // `ssm.get` and `ssm.put` share the prefix `ssm.`, which is how a family was tested for.
    let mut needles: Vec<String> = Vec::new();
    for name in &names {
        needles.push(format!("\"{name}\""));
        if let Some((family, _)) = name.split_once('.') {
            needles.push(format!("\"{family}."));
        }
    }
    let modules: Vec<String> = files
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("src/steps/"))
        .map(|rest| rest.split(['/', '.']).next().unwrap().to_string())
        .filter(|m| {
            names
                .iter()
                .any(|n| n.split('.').next() == Some(m.as_str()))
        })
        .collect();
    for m in &modules {
        needles.push(format!("steps::{m}::"));
        needles.push(format!("steps::{m};"));
        needles.push(format!("steps::{{{m}"));
    }
    needles.sort();
    needles.dedup();
    let outside = |p: &str| !p.starts_with("src/steps/");
    let found = offences(&files, outside, |line| {
        needles
            .iter()
            .find(|n| line.contains(n.as_str()))
            .map(|n| format!("names a kind (`{n}`)"))
    });
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The library is the product; the binary is a thin shell over it: `main.rs` calls the CLI
/// and nothing else.
#[test]
fn main_only_calls_the_cli() {
    let files = src_files();
    let (_, main) = files.iter().find(|(p, _)| p == "src/main.rs").unwrap();
    let code: Vec<&str> = code_lines(main)
        .map(|(_, l)| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("#!") && !l.starts_with("#["))
        .collect();
    assert!(
        code.len() <= 5 && code.iter().any(|l| l.contains("cli::main()")),
        "src/main.rs does more than call cli::main():\n{}",
        code.join("\n")
    );
}

/// ARCHITECTURE.md's code map names every source file: a file it does not mention is one a
/// reader cannot place. A file is named by its path (`src/steps/kind.rs`), or by its name in a
/// line that names its folder (`src/journal/` … `audit.rs`); a `mod.rs` by its folder.
#[test]
fn the_code_map_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let start = map.find("## Code map").expect("a code map section");
    let rest = &map[start + 3..];
    let map = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    // The map's entries: each starts with `- ` and may run over several lines.
    let entries: Vec<String> = map
        .split("\n- ")
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut missing = Vec::new();
    for (path, _) in src_files() {
        let (folder, name) = path.rsplit_once('/').unwrap();
        let folder = format!("`{folder}/");
        let named = if name == "mod.rs" {
            map.contains(&folder) || map.contains(&format!("`{path}`"))
        } else {
            map.contains(&format!("`{path}`"))
                || entries.iter().any(|e| {
                    e.contains(&folder)
                        && (e.contains(&format!("`{name}`")) || e.contains(&format!("`{name}:")))
                })
        };
        if !named {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name:\n{}",
        missing.join("\n")
    );
}
