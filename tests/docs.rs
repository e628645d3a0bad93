//! `runbook docs`: the pages kept in docs/runbooks/ match the shipped runbooks, and a rendered
//! page has every step, placeholders for what only a run knows, and no secret-looking value.

mod common;

use common::{Test, repo};

/// A test directory holding the shipped runbooks and environments.
fn shipped() -> Test {
    let t = Test::new();
    for f in common::walk(&repo().join("runbooks")) {
        std::fs::copy(&f, t.runbooks_dir().join(f.file_name().unwrap())).unwrap();
    }
    t
}

fn shipped_names() -> Vec<String> {
    let mut names: Vec<String> = common::walk(&repo().join("runbooks"))
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .map(|f| f.file_stem().unwrap().to_str().unwrap().to_string())
        .filter(|n| n != "environments")
        .collect();
    names.sort();
    names
}

fn docs(args: &[&str]) -> String {
    let mut all = vec!["docs"];
    all.extend_from_slice(args);
    let run = shipped().args(&all).run();
    run.assert_code(0);
    run.stdout
}

#[test]
fn committed_docs_match_the_shipped_runbooks() {
    let dir = repo().join("docs/runbooks");
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let names = shipped_names();
    for name in &names {
        let page = docs(&[name, "--env", "production"]);
        let path = dir.join(format!("{name}.md"));
        if update {
            std::fs::write(&path, &page).unwrap();
        }
        assert_eq!(secret_looking(&page), Vec::<String>::new(), "{name}");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == page,
            "docs/runbooks/{name}.md is stale: run `UPDATE_DOCS=1 cargo test --test docs committed_docs` and commit it"
        );
    }
    for f in common::walk(&dir) {
        let stem = f.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            names.contains(&stem),
            "{} documents no shipped runbook: delete it",
            f.display()
        );
    }
}

/// Runs of characters that look like a generated secret: long hex, or long base64 with upper
/// case, lower case and digits mixed (split at `/`, so that paths are not taken for one).
fn secret_looking(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || "+=_-".contains(c) {
            word.push(c);
            continue;
        }
        let hex = word.len() >= 20 && word.chars().all(|c| c.is_ascii_hexdigit());
        let b64 = word.len() >= 20
            && word.chars().any(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase())
            && word.chars().any(|c| c.is_ascii_digit());
        if hex || b64 {
            found.push(word.clone());
        }
        word.clear();
    }
    found
}

#[test]
fn db_password_page_has_every_step_and_no_secret() {
    let page = docs(&["db-password", "--env", "production"]);
    let ids = [
        "current_user",
        "current",
        "new_password",
        "alter_role",
        "store",
        "redeploy",
        "verify",
        "restore_db_password",
        "restore_ssm",
        "redeploy_old",
        "verify_old",
    ];
    for id in ids {
        assert!(
            page.contains(&format!("(`{id}`)\n")),
            "step `{id}` is missing:\n{page}"
        );
    }
    let headings: Vec<&str> = page.lines().filter(|l| l.starts_with("### ")).collect();
    assert_eq!(headings.len(), ids.len(), "{headings:#?}");
    assert!(headings[0].starts_with("### 1. ") && headings[7].starts_with("### R1. "));

    assert_eq!(
        secret_looking("x 0123456789abcdef0123456789abcdef y Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"),
        [
            "0123456789abcdef0123456789abcdef",
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"
        ],
        "the detector finds hex and base64"
    );
    assert_eq!(secret_looking(&page), Vec::<String>::new());
    // The secrets travel in files and prompts, never on a command line.
    assert!(page.contains("--value file://new_password"), "{page}");
    assert!(page.contains("--value file://current"), "{page}");
    assert!(!page.contains("--value \"$") && !page.contains("--value $"));
    // The role the app logs in as, read from SSM (`DB_USER`) by the first step.
    assert!(page.contains("\\password \"$CURRENT_USER\""), "{page}");
    assert!(
        !page.to_uppercase().contains("PASSWORD '"),
        "no SQL literal"
    );
    assert!(page.contains("(umask 077 && openssl rand -hex 24 | tr -d '\\n' > new_password)"));
    // Gates, rollback and the environment's values.
    assert!(page.contains(
        "**Stop and confirm:** Rotate the password of role $CURRENT_USER in production?"
    ));
    // One gate covers the whole change: nothing in it waits for a person.
    assert!(page.contains(
        "The answer covers steps 4 to 7: do them one after another without pausing in between."
    ));
    assert_eq!(page.matches("**Stop and confirm:**").count(), 1, "{page}");
    assert!(page.contains("## If verification fails"));
    assert!(page.contains("start at R1 (`restore_db_password`)"));
    assert!(page.contains("--name /musehub/production/DB_PASSWORD"));
    assert!(page.contains("ubuntu@musehub.example.com"));
}

#[test]
fn without_an_environment_its_values_are_placeholders() {
    let page = docs(&["db-password"]);
    assert!(
        page.contains("--name '<env.ssm_prefix>/DB_PASSWORD'"),
        "{page}"
    );
    assert!(page.contains("--region <aws.region>"), "{page}");
    assert!(!page.contains("/musehub/production"));
    assert!(page.contains("'<env.app_url>/explore'"), "{page}");
}

#[test]
fn an_unknown_environment_is_refused() {
    let run = shipped()
        .args(&["docs", "db-password", "--env", "prod"])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("no environment `prod`"),
        "{}",
        run.stderr
    );
}

/// Rendered without an environment, a page explains once, before its steps, every kind of
/// placeholder its steps use (`<port>`, `<host>`, `<hosts.app>` …) and how to fill it in.
#[test]
fn the_placeholders_a_page_uses_are_explained_at_its_top() {
    let page = docs(&["db-password"]);
    let (top, steps) = page.split_once("## Steps").unwrap();
    let top = top.split_once("## Before you start").unwrap().1;
    let family = regex::Regex::new(r"<([a-z][a-z_]*)(?:\.[A-Za-z0-9_]+)*>").unwrap();
    let mut seen: Vec<String> = family
        .captures_iter(steps)
        .map(|c| c[1].to_string())
        .filter(|f| !["steps", "inputs"].contains(&f.as_str()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        ["aws", "databases", "env", "host", "hosts", "port"],
        "{steps}"
    );
    for explained in [
        "`<env.NAME>` (here `<env.app_ca_file>`",
        "`<hosts.NAME>` (here `<hosts.app>`)",
        "`<hosts.HOST>` is the host the database's `via:` names",
        "`<aws.region>`: the environment's `aws.region`",
        "`<databases.NAME.FIELD>` (here `<databases.main.host>`",
        "`<host>` and `<port>`: the host and port of the step's URL",
        "`runbook docs db-password --env ENV`",
    ] {
        assert!(
            top.contains(explained),
            "`{explained}` not at the top:\n{top}"
        );
    }
    // Each explained once.
    assert_eq!(page.matches("`<host>` and `<port>`").count(), 1);
    // For an environment, its values are filled in and nothing needs explaining.
    let filled = docs(&["db-password", "--env", "production"]);
    assert!(
        !filled.contains("placeholders in angle brackets"),
        "{filled}"
    );
    assert!(
        !filled.contains("<port>") && !filled.contains("<hosts."),
        "{filled}"
    );
}
