//! The shipped `image-audit` runbook against the sandbox's fixture images: a clean image
//! passes; a secret in a layer or in the image's ENV fails the run, naming the layer or the
//! variable and never printing the secret.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use common::{Run, Sandbox, Test, repo};

/// The sandbox's `docker` stand-in serves one current image to every run: one test at a time.
static CURRENT_IMAGE: Mutex<()> = Mutex::new(());

/// Makes `image` the one the musehub service runs, and restores the previous one when
/// dropped (also when the test fails).
struct UsingImage {
    file: PathBuf,
    before: Option<String>,
    _lock: MutexGuard<'static, ()>,
}

impl UsingImage {
    fn set(sb: &Sandbox, image: &str) -> UsingImage {
        let lock = CURRENT_IMAGE.lock().unwrap_or_else(|e| e.into_inner());
        let file = sb.state.join("docker/current");
        let before = std::fs::read_to_string(&file).ok();
        std::fs::write(&file, format!("{image}\n")).unwrap();
        UsingImage {
            file,
            before,
            _lock: lock,
        }
    }
}

impl Drop for UsingImage {
    fn drop(&mut self) {
        match &self.before {
            Some(text) => std::fs::write(&self.file, text).unwrap(),
            None => std::fs::remove_file(&self.file).unwrap(),
        }
    }
}

fn audit(image: &str) -> Run {
    let sb = common::sandbox();
    let _using = UsingImage::set(&sb, image);
    let t = Test::new().with_sandbox(&sb);
    std::fs::copy(
        repo().join("runbooks/image-audit.yaml"),
        t.runbooks_dir().join("image-audit.yaml"),
    )
    .unwrap();
    t.args(&["run", "image-audit", "--env", "sandbox", "--yes"])
        .run()
}

#[test]
fn a_clean_image_passes() {
    let run = audit("musehub:clean");
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("checked the creation commands of 12 layer(s)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("PYTHONDONTWRITEBYTECODE, PYTHONUNBUFFERED, PYTHONPATH"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_secret_in_a_layer_fails_naming_the_layer_not_the_command() {
    let run = audit("musehub:leaky-layer");
    run.assert_code(1);
    assert!(
        run.stderr.contains("step `layers` failed")
            && run.stderr.contains(
                "LEAK in layer 3 of 13 (ID <missing>, RUN): its command contains password"
            ),
        "{}",
        run.stderr
    );
    let all = run.all_bytes();
    assert!(
        !common::contains(&all, "hunter2") && !common::contains(&all, "DB_PASSWORD="),
        "the leaked command line was printed"
    );
}

#[test]
fn a_secret_in_the_image_env_fails_naming_the_variable_not_its_value() {
    let run = audit("musehub:leaky-env");
    run.assert_code(1);
    assert!(
        run.stderr.contains("step `image_env` failed")
            && run
                .stderr
                .contains("LEAK in image ENV: AWS_SECRET_ACCESS_KEY is set"),
        "{}",
        run.stderr
    );
    assert!(
        !common::contains(&run.all_bytes(), "wJalrXUtnFEMI"),
        "the variable's value was printed"
    );
}

/// On a terminal the audit's evidence stays on screen (a line of its own per check, not the
/// spinner's passing message), and its steps, which only read, are planned and run as such.
#[test]
fn on_a_terminal_the_evidence_stays_and_the_steps_are_read_only() {
    let sb = common::sandbox();
    let _using = UsingImage::set(&sb, "musehub:clean");
    let t = Test::new().with_sandbox(&sb);
    std::fs::copy(
        repo().join("runbooks/image-audit.yaml"),
        t.runbooks_dir().join("image-audit.yaml"),
    )
    .unwrap();
    let t = t.args(&["run", "image-audit", "--env", "sandbox", "--yes"]);
    let mut p = common::pty::Pty::spawn(&t);
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    for evidence in [
        "layers: checked the creation commands of 12 layer(s)",
        "image_env: checked 3 ENV variable(s)",
    ] {
        assert!(out.contains(evidence), "`{evidence}` not on screen:\n{out}");
    }
    assert!(!out.contains("CHANGES"), "{out}");

    // The plan says so, and the run's log keeps the evidence as notes.
    let plan = t.then(&["plan", "image-audit", "--env", "sandbox"]).run();
    plan.assert_code(0);
    let effects: Vec<&str> = plan
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("effect: "))
        .collect();
    assert_eq!(effects, ["read-only"; 3], "{}", plan.stdout);
    let log: Vec<runbook::engine::event::Event> = common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .filter(|f| f.ends_with("events.jsonl"))
        .flat_map(|f| common::parse_events(&std::fs::read_to_string(&f).unwrap(), "events"))
        .collect();
    let notes: Vec<&str> = log
        .iter()
        .filter_map(|e| match e {
            runbook::engine::event::Event::Note { id, text } if id == "layers" => {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 1, "{log:?}");
    assert!(notes[0].starts_with("checked the creation commands of 12 layer(s) of sha256:"));
}
