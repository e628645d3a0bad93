//! The JSON Schemas (`schemas/*.json`) read by an independent validator, as an editor reads
//! them: check-jsonschema, from PyPI, installed on first use into a virtualenv under the
//! target directory. Every shipped runbook and environments file, and every fixture that
//! `check` passes, is valid; of the invalid fixtures, the schema alone rejects at least
//! [`REJECTED_AT_LEAST`] (the others need what a schema cannot say: templates, other files,
//! the environments, a regular expression that compiles).
//!
//! YAML is turned into JSON by the crate's own reader (bounded, so an alias bomb is refused
//! rather than expanded); a fixture it refuses is not a document a schema can judge and is
//! counted apart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The validator, pinned: a new release could judge differently.
const PACKAGE: &str = "check-jsonschema==0.39.0";

/// How many invalid fixtures the schema alone rejects. Raise it when the schema learns
/// something new (BENCHMARKS.md keeps the history); it never goes down.
const REJECTED_AT_LEAST: usize = 45;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schema-validator")
}

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

/// Debian's python, as `scripts/sandbox` uses (a stable path, no shim), else the one on PATH.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn python_can_make_a_venv() -> bool {
    Command::new(python())
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The validator's executable, installed into `<target>/tmp/schema-validator/venv` when
/// missing (once: a lock beside the venv, a marker naming the package once pip is done).
fn validator() -> PathBuf {
    let dir = work_dir();
    fs::create_dir_all(&dir).unwrap();
    let venv = dir.join("venv");
    let exe = venv.join("bin/check-jsonschema");
    let marker = venv.join(".runbook-ready");
    let lock = fs::File::create(dir.join("venv.lock")).unwrap();
    lock.lock().unwrap();
    if fs::read_to_string(&marker).is_ok_and(|m| m == PACKAGE) && exe.exists() {
        return exe;
    }
    if !python_can_make_a_venv() {
        eprintln!("schema validator: installing python3 and python3-venv with apt-get");
        run(Command::new("apt-get").args(["update", "-q"]));
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(["python3", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"));
    }
    eprintln!(
        "schema validator: installing {PACKAGE} into {}",
        venv.display()
    );
    let _ = fs::remove_dir_all(&venv);
    run(Command::new(python()).args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        PACKAGE,
    ]));
    fs::write(&marker, PACKAGE).unwrap();
    exe
}

/// A YAML file as JSON, through the crate's reader; `None` when it refuses the file.
fn to_json(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let node = runbook::load::yaml::parse(&text).ok()?;
    Some(serde_json::to_string_pretty(&node.to_json()).unwrap())
}

/// Validates each `(name, yaml file)` against `schema`; returns the names of the rejected ones
/// with their first error, and the names the YAML reader refused.
fn validate(
    schema: &str,
    files: &[(String, PathBuf)],
    scratch: &str,
) -> (BTreeMap<String, String>, Vec<String>) {
    let dir = work_dir().join(scratch);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut unreadable = Vec::new();
    let mut jsons = Vec::new();
    for (name, path) in files {
        match to_json(path) {
            Some(json) => {
                let out = dir.join(format!("{name}.json"));
                fs::write(&out, json).unwrap();
                jsons.push(out);
            }
            None => unreadable.push(name.clone()),
        }
    }
    let out = Command::new(validator())
        .arg("--schemafile")
        .arg(root().join("schemas").join(schema))
        .args(["--output-format", "json"])
        .args(&jsons)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema printed no JSON report ({e}; {}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // `parse_errors` is there only when a file could not be read.
    assert!(
        report["parse_errors"].as_array().is_none_or(Vec::is_empty),
        "the validator could not read a file: {report:#}"
    );
    let mut rejected = BTreeMap::new();
    for e in report["errors"].as_array().unwrap() {
        let file = Path::new(e["filename"].as_str().unwrap());
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let why = format!("{}: {}", e["path"].as_str().unwrap(), e["message"]);
        rejected.entry(name).or_insert(why);
    }
    // A failing status with no error, or a passing one with errors, is a report we misread.
    assert_eq!(
        report["status"].as_str(),
        Some(if rejected.is_empty() { "ok" } else { "fail" }),
        "{report:#}"
    );
    (rejected, unreadable)
}

/// The YAML files of a directory (not recursive), by file stem.
fn yaml_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_runbooks_and_passing_fixtures_are_valid() {
    let mut runbooks = Vec::new();
    let mut environments = Vec::new();
    for (name, path) in yaml_files(&root().join("runbooks")) {
        if name == "environments" {
            environments.push((name, path));
        } else {
            runbooks.push((name, path));
        }
    }
    assert!(runbooks.len() >= 8, "{runbooks:?}");
    assert_eq!(environments.len(), 1);
    // Fixtures that `check` passes (with warnings or none), a runbook per case.
    for sub in ["valid", "warnings"] {
        let dir = root().join("tests/fixtures").join(sub);
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                for (name, file) in yaml_files(&path) {
                    runbooks.push((format!("{sub}-{name}"), file));
                }
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let name = path.file_stem().unwrap().to_string_lossy();
                runbooks.push((format!("{sub}-{name}"), path.clone()));
            }
        }
    }

    let (rejected, unreadable) = validate("runbook.v1.json", &runbooks, "valid-runbooks");
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert!(
        rejected.is_empty(),
        "the runbook schema rejects files that `check` passes:\n{rejected:#?}"
    );
    let (rejected, unreadable) =
        validate("environments.v1.json", &environments, "valid-environments");
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert!(
        rejected.is_empty(),
        "the environments schema rejects the shipped environments:\n{rejected:#?}"
    );
}

#[test]
fn the_schema_alone_rejects_most_invalid_fixtures() {
    // One case per fixture: a file, or `CASE/CASE.yaml` of a case across runbooks.
    let dir = root().join("tests/fixtures/invalid");
    let mut cases = yaml_files(&dir);
    for e in fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let file = path.join(format!("{name}.yaml"));
            assert!(file.exists(), "{} has no {name}.yaml", path.display());
            cases.push((name, file));
        }
    }
    cases.sort();

    let (rejected, unreadable) = validate("runbook.v1.json", &cases, "invalid");
    let readable = cases.len() - unreadable.len();
    let passed: Vec<&str> = cases
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !rejected.contains_key(*n) && !unreadable.iter().any(|u| u == n))
        .collect();
    // The account, for BENCHMARKS.md and for whoever raises the floor.
    eprintln!(
        "the schema alone rejects {} of {} invalid fixtures ({readable} read as YAML; the \
         reader refuses {}: {})",
        rejected.len(),
        cases.len(),
        unreadable.len(),
        unreadable.join(", ")
    );
    for (name, why) in &rejected {
        eprintln!("  rejected  {name}: {why}");
    }
    for name in &passed {
        eprintln!("  passes    {name}");
    }
    assert!(
        rejected.len() >= REJECTED_AT_LEAST,
        "the schema alone rejects {} invalid fixtures, fewer than {REJECTED_AT_LEAST}; it \
         passes {passed:?}",
        rejected.len()
    );
}
