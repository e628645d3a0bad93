//! The shipped `image-audit` runbook against the sandbox's fixture images
//! (`scripts/sandbox.d/docker-images/`): clean images pass, also those that look alarming; each
//! shape of leak fails the run, every finding reported in one run, naming the layer, the
//! instruction and the rule, never a value.

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
    audit_with(image, &[])
}

/// Audit with `image` as the service's current image, and `args` added to the run (an
/// `--input image=…` audits another one).
fn audit_with(current: &str, args: &[&str]) -> Run {
    let sb = common::sandbox();
    let _using = UsingImage::set(&sb, current);
    let t = Test::new().with_sandbox(&sb);
    std::fs::copy(
        repo().join("runbooks/image-audit.yaml"),
        t.runbooks_dir().join("image-audit.yaml"),
    )
    .unwrap();
    let mut all = vec!["run", "image-audit", "--env", "sandbox", "--yes"];
    all.extend_from_slice(args);
    let run = t.args(&all).run();
    run.abandon_unfinished();
    run
}

/// The fixture images, from the repository: tag, and whether the audit must fail it.
fn fixtures() -> Vec<(String, bool)> {
    let dir = repo().join("scripts/sandbox.d/docker-images");
    let mut out: Vec<(String, bool)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let tag = v["RepoTags"][0].as_str().unwrap().to_string();
            let clean = tag == "musehub:clean" || tag.contains("alarming-but-clean");
            (tag, !clean)
        })
        .collect();
    out.sort();
    out
}

/// The values planted in the fixtures' leaks, and the commands holding them: none may be
/// printed or written anywhere.
const PLANTED: &[&str] = &[
    "hunter2",
    "DB_PASSWORD=",
    "wJalrXUtnFEMI",
    "Ruby-Quartz-91",
    "Tangerine-Falcon-77",
    "8f1c2e7a9b3d4c5e6f708192a3b4c5d6",
    "3kXq9LmT2vB8nR5wZ1yC4hJ7",
    "ghp_7Hq2LmZ9xR4vT8nB1cW6yK3pD5sF0gJ2aE9u",
    "AKIAQ3EGRZ7TYW2XNB4K",
    "9vJ2kLq/Xw8Rt+Zp4Nf7Bc1Hs6Dm3Yg5Ue0aTiKo",
    "xoxb-2941857301",
    "sk_live_51Hc9XqLm2Zv8Rt4Nb7Wy1Kp3",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU",
    "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZjEy",
    "q7Vn2Kx9Lp4Rt8Zw1Ym6Bs3Hd5Jf0Ga",
    "git clone",
    "Authorization: Bearer",
];

fn findings(run: &Run) -> Vec<String> {
    // Each finding shows as the live output, then again in the failed step's output.
    let mut found: Vec<String> = Vec::new();
    for f in run
        .stderr
        .lines()
        .filter_map(|l| l.split_once("| FINDING ").map(|(_, f)| f.to_string()))
    {
        if !found.contains(&f) {
            found.push(f);
        }
    }
    found
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
    assert!(run.stderr.contains("no finding"), "{}", run.stderr);
}

#[test]
fn a_secret_in_a_layer_fails_naming_the_layer_not_the_command() {
    let run = audit("musehub:leaky-layer");
    run.assert_code(1);
    assert!(run.stderr.contains("step `audit` failed"), "{}", run.stderr);
    assert_eq!(
        findings(&run),
        [
            "in layer 3 of 13 (ID <missing>, RUN) [secret-name]: sets DB_PASSWORD to a value (value not shown)"
        ]
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
    assert_eq!(
        findings(&run),
        [
            "in image ENV [secret-name]: AWS_SECRET_ACCESS_KEY is set (value not shown)",
            "in image ENV [random-string]: AWS_SECRET_ACCESS_KEY holds a long random-looking string (value not shown)",
        ]
    );
    assert!(
        !common::contains(&run.all_bytes(), "wJalrXUtnFEMI"),
        "the variable's value was printed"
    );
}

/// Every fixture: each leak shape is found (by the rule the fixture is about), the clean ones
/// pass, and no planted value or leaking command is printed or written anywhere.
#[test]
fn every_leak_shape_is_found_and_no_clean_image_is_flagged() {
    let expect: &[(&str, &str)] = &[
        (
            "musehub:extra-env",
            "[env-allow-list]: FEATURE_FLAGS is set and is not in the allow-list",
        ),
        ("musehub:leak-auth-header", "[authorization-header]"),
        ("musehub:leak-aws-key", "[aws-access-key]"),
        (
            "musehub:leak-build-arg",
            "[secret-name]: sets GH_PAT to a value",
        ),
        ("musehub:leak-build-arg", "[github-token]"),
        (
            "musehub:leak-database-url",
            "in image ENV [url-credentials]: DATABASE_URL holds a URL with a user and password",
        ),
        (
            "musehub:leak-db-pass",
            "in image ENV [secret-name]: DB_PASS is set",
        ),
        ("musehub:leak-private-key", "[private-key]"),
        (
            "musehub:leak-random-string",
            "in layer 4 of 14 (ID <missing>, RUN) [random-string]",
        ),
        (
            "musehub:leak-random-string",
            "in layer 3 of 14 (ID <missing>, RUN) [random-string]",
        ),
        (
            "musehub:leak-sentry-dsn",
            "in image ENV [secret-name]: SENTRY_DSN is set",
        ),
        ("musehub:leak-slack-token", "[slack-token]"),
        (
            "musehub:leak-stripe-key",
            "in image LABEL com.musehub.billing [stripe-key]",
        ),
    ];
    let images = fixtures();
    assert!(images.len() >= 15, "{images:?}");
    let mut missed = Vec::new();
    for (tag, leaks) in &images {
        let run = audit(tag);
        let found = findings(&run);
        if !leaks {
            assert_eq!(run.code, 0, "{tag} is clean:\n{}", run.stderr);
            assert!(found.is_empty(), "{tag}: {found:?}");
            continue;
        }
        assert_eq!(run.code, 1, "{tag}:\n{}", run.stderr);
        assert!(!found.is_empty(), "{tag}:\n{}", run.stderr);
        for (_, want) in expect.iter().filter(|(t, _)| t == tag) {
            if !found.iter().any(|f| f.contains(want)) {
                missed.push(format!("{tag}: {want} not in {found:?}"));
            }
        }
        let all = run.all_bytes();
        for p in PLANTED {
            assert!(
                !common::contains(&all, p),
                "{tag}: `{p}` was printed or written"
            );
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// `--input image=REF` audits that image (a build in CI) instead of the service's, and every
/// finding of it is reported in the one run.
#[test]
fn a_given_image_is_audited_instead_of_the_running_one() {
    let run = audit_with(
        "musehub:clean",
        &["--input", "image=musehub:leak-build-arg"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("image: skipped"),
        "the running image is not looked up:\n{}",
        run.stderr
    );
    assert_eq!(findings(&run).len(), 2, "{}", run.stderr);
    let run = audit_with(
        "musehub:leaky-layer",
        &["--input", "image=musehub:alarming-but-clean"],
    );
    run.assert_code(0);
    let run = audit_with("musehub:clean", &["--input", "image=musehub:no-such-image"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("Error: No such image: musehub:no-such-image"),
        "{}",
        run.stderr
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
    // On a terminal the optional input is asked, with its default: no other image.
    p.expect("An image reference to audit");
    p.send("\r");
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    for evidence in [
        "audit: checked the creation commands of 12 layer(s)",
        "audit: checked 3 ENV variable(s)",
        "audit: no finding",
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
    assert_eq!(effects, ["read-only"; 2], "{}", plan.stdout);
    let log: Vec<runbook::engine::event::Event> = common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .filter(|f| f.ends_with("events.jsonl"))
        .flat_map(|f| common::parse_events(&std::fs::read_to_string(&f).unwrap(), "events"))
        .collect();
    let notes: Vec<&str> = log
        .iter()
        .filter_map(|e| match e {
            runbook::engine::event::Event::Note { id, text } if id == "audit" => {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(notes.len(), 4, "{log:?}");
    assert!(notes[0].starts_with("checked the creation commands of 12 layer(s) of sha256:"));
}
