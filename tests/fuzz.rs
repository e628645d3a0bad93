//! A bounded, deterministic fuzz of the loader, the checker, the diagnostics and template
//! rendering: the shipped runbooks and fixtures, mutated with YAML's sharp edges (aliases,
//! nesting, odd scalars, multi-byte text, control characters, template syntax), must never
//! panic, and every problem must point inside its file and render in every format.
//!
//! `RUNBOOK_FUZZ_SECS` (default 20) bounds the time; `RUNBOOK_FUZZ_SEED` picks another seed.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use runbook::check;
use runbook::diag;
use runbook::engine::InputValue;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "&b [*a, *a, *a, *a]",
    "*b",
    "- ",
    "- - - - ",
    "[",
    "]",
    "{",
    "}",
    "[[[[[[",
    "]]]]",
    "{a: {b: {c: ",
    ": ",
    ":",
    ",",
    "\"",
    "'",
    "\\",
    "#",
    "|",
    ">",
    "---\n",
    "...",
    "!!binary ",
    "!tag ",
    "~",
    "null",
    "yes",
    "1e308",
    "-1",
    "-0",
    "nan",
    ".inf",
    "0x10",
    "4294967295",
    "18446744073709551615",
    "99999999999999999999999",
    "0s",
    "1y",
    "1e308s",
    "-5s",
    "é",
    "ü€",
    "😀",
    "\u{200b}",
    "\u{1b}[2K",
    "\r",
    "\t",
    "\u{7}",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\n",
    "\n  ",
    "\n    - ",
    "{{",
    "}}",
    "{{ inputs.x }}",
    "{{ steps.a.value | upper }}",
    "{%",
    "%}",
    "{% for i in inputs %}",
    "{% endfor %}",
    "{# ",
    " #}",
    "{{ 'é' ) }}",
    "{{ (((((( }}",
    "timeout: ",
    "retry: {attempts: ",
    "backoff: ",
    "on_failure: ",
    "when: ",
    "id: ",
    "generate: {format: hex}",
    "ssh.exec: ",
    "http.check: ",
    "hosts: ",
    "parallel: ",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut b: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 | 1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.bytes());
            }
            2 => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                // Duplicate a slice (repeated keys, repeated structure).
                let end = (at + rng.below(200)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
            4 => {
                // Deep nesting of one shape.
                let shape = ["- ", "[", "{a: ", "  a:\n"][rng.below(4)];
                let n = [10, 63, 64, 65, 300, 5000][rng.below(6)];
                b.splice(at..at, shape.repeat(n).into_bytes());
            }
            _ => {
                // A random byte, valid UTF-8 or not.
                if at < b.len() {
                    b[at] = (rng.next() & 0xff) as u8;
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Load, check, render every problem three ways, plan every valid runbook.
fn exercise(name: &str, text: String, envs_text: &str) {
    let dir = Path::new("runbooks");
    let mut problems = Vec::new();
    let envs = check::load_environments(
        &dir.join("environments.yaml"),
        envs_text.into(),
        &mut problems,
    );
    let rb = check::load_runbook(
        &dir.join(format!("{name}.yaml")),
        text,
        &envs,
        &mut problems,
    );
    for p in &problems {
        if let (Some(source), Some(span)) = (&p.source, &p.span) {
            assert!(
                source.text.get(span.clone()).is_some(),
                "span {span:?} not in the text"
            );
        }
        let _ = p.location();
    }
    let shown = diag::render(&problems, false, 100);
    assert!(
        shown.len() < 200_000 + 2_000 * problems.len(),
        "{} bytes of report",
        shown.len()
    );
    if let Some(rb) = rb {
        for env in &envs.list {
            let mut inputs = IndexMap::new();
            for (n, spec) in &rb.doc.inputs {
                inputs.insert(
                    n.clone(),
                    InputValue {
                        value: spec.default.clone().unwrap_or_else(|| "v-é".into()),
                        secret: spec.secret,
                    },
                );
            }
            let plan = runbook::plan::plan(&rb, env, &inputs);
            let _ = plan.render_text();
            let _ = plan.render_markdown();
        }
    }
}

#[test]
fn mutated_runbooks_never_panic_the_loader_checker_or_renderer() {
    let secs = std::env::var("RUNBOOK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("RUNBOOK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    let repo = common::repo();
    let envs_text = std::fs::read_to_string(repo.join("runbooks/environments.yaml")).unwrap();
    let mut corpus: Vec<(String, String)> = Vec::new();
    for dir in ["runbooks", "tests/fixtures/valid", "tests/fixtures/invalid"] {
        for e in std::fs::read_dir(repo.join(dir)).unwrap().flatten() {
            let p = e.path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            if p.extension().is_some_and(|x| x == "yaml") && stem != "environments" {
                corpus.push((stem, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    corpus.sort();
    assert!(corpus.len() > 20);
    // Panics are caught and reported with the input; the default hook would print each one.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cases = 0usize;
    let mut failures = Vec::new();
    while Instant::now() < deadline && failures.len() < 5 {
        let (name, text) = &corpus[rng.below(corpus.len())];
        let (target, text, envs) = match rng.below(10) {
            // Sometimes environments.yaml is the one mutated.
            0 => (name.clone(), text.clone(), mutate(&mut rng, &envs_text)),
            _ => (name.clone(), mutate(&mut rng, text), envs_text.clone()),
        };
        let started = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| exercise(&target, text.clone(), &envs)));
        let took = started.elapsed();
        if r.is_err() || took > Duration::from_secs(2) {
            failures.push(format!(
                "case {cases} ({}; {took:?}):\n--- runbook\n{}\n--- environments (first 300 bytes)\n{}",
                if r.is_err() { "panic" } else { "slow" },
                text.escape_debug(),
                envs.chars().take(300).collect::<String>().escape_debug()
            ));
        }
        cases += 1;
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(cases > 100, "only {cases} cases in {secs}s");
    eprintln!("fuzz: {cases} cases in {secs}s, seed {seed}");
}

#[test]
fn random_yaml_shapes_never_panic_the_loader() {
    let mut rng = Rng(42);
    let envs = std::fs::read_to_string(common::repo().join("runbooks/environments.yaml")).unwrap();
    for _ in 0..3000 {
        let mut s = String::from("version: 1\nname: r\nsummary: s\n");
        for _ in 0..rng.below(30) {
            s.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        exercise("r", s, &envs);
    }
}
