//! In-process benchmarks (criterion) of the parts a run goes through: loading and checking,
//! templates, the redactor, plans, and the engine itself on local steps.
//!
//! `cargo bench --bench engine` (add a filter to run one group: `cargo bench --bench engine --
//! redact`). Nothing here touches the network or the sandbox's services: the runbooks it runs
//! have only `generate` steps, and its inputs are the shipped runbooks or generated in a
//! temporary directory. The whole-process side (start-up, the binary end to end) is
//! `benches/cli.sh`; results of both are in BENCHMARKS.md. `cargo test --all-targets` runs
//! each benchmark once, unoptimized, as a smoke test (a few seconds).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use indexmap::IndexMap;
use runbook::catalog::Runbook;
use runbook::engine::event::{Bus, RunStatus, Sink};
use runbook::engine::record::Recorder;
use runbook::engine::{Engine, Interrupt, RunOptions};
use runbook::journal::{EventLog, RunJournal, RunMeta};
use runbook::load::{self, Catalog};
use runbook::model::{Environment, Environments};
use runbook::secret::Redactor;
use runbook::steps::Nobody;
use runbook::{check, plan, template};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks")
}

/// A catalog without errors (warnings are fine).
fn assert_clean(catalog: &Catalog) {
    let errors: Vec<_> = catalog.problems.iter().filter(|p| p.is_error()).collect();
    assert!(errors.is_empty(), "unexpected problems: {errors:?}");
}

fn environments() -> Environments {
    let mut problems = Vec::new();
    let envs = check::load_environments_in(&shipped_dir(), &mut problems);
    assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
    envs
}

/// The runbook `benches/cli.sh` generates 1,000 times: 6 steps, templates between them.
fn generated_runbook(i: usize) -> String {
    format!(
        r#"version: 1
name: rb-{i}
summary: Generated runbook {i}
inputs:
  reason: {{ description: Why, default: scheduled }}
steps:
  - id: a
    generate: {{ format: hex, bytes: 24 }}
  - id: b
    generate: {{ format: fernet }}
  - id: c
    when: inputs.reason == 'scheduled'
    generate: {{ format: base64url, bytes: 32 }}
  - id: d
    title: "Tell {{{{ env.name }}}}"
    manual.confirm:
      instructions: "Use {{{{ steps.a.value }}}} and {{{{ steps.b.value }}}} for {{{{ inputs.reason }}}}"
  - id: e
    generate: {{ format: alphanumeric, length: 40 }}
  - id: f
    generate: {{ format: hex }}
"#
    )
}

/// One runbook of `n` `generate` steps (as `benches/cli.sh`'s `steps1000`).
fn generate_steps(n: usize) -> String {
    let mut s = format!("version: 1\nname: steps{n}\nsummary: {n} steps\nsteps:\n");
    for i in 1..=n {
        s.push_str(&format!(
            "  - id: s{i}\n    generate: {{ format: hex, bytes: 16 }}\n"
        ));
    }
    s
}

fn load_one(name: &str, text: String, envs: &Environments) -> Runbook {
    let mut problems = Vec::new();
    let rb = check::load_runbook(Path::new(name), text, envs, &mut problems);
    rb.unwrap_or_else(|| panic!("{name} does not load: {problems:?}"))
}

fn bench_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let shipped = shipped_dir();
    let files = std::fs::read_dir(&shipped)
        .expect("runbooks/")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.path().extension().is_some_and(|x| x == "yaml")
                    && e.file_name() != load::ENVIRONMENTS_FILE
            })
        })
        .count();
    assert_clean(&check::load_dir(&shipped).expect("runbooks/"));
    g.throughput(Throughput::Elements(files as u64));
    g.bench_function("shipped runbooks", |b| {
        b.iter(|| check::load_dir(black_box(&shipped)).expect("runbooks/"))
    });

    // 1,000 runbooks of 6 steps, as `benches/cli.sh` generates them.
    let many = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(
        shipped.join(load::ENVIRONMENTS_FILE),
        many.path().join(load::ENVIRONMENTS_FILE),
    )
    .expect("copy environments.yaml");
    for i in 1..=1000 {
        std::fs::write(
            many.path().join(format!("rb-{i}.yaml")),
            generated_runbook(i),
        )
        .expect("write a runbook");
    }
    let catalog = check::load_dir(many.path()).expect("the generated catalog");
    assert_clean(&catalog);
    assert_eq!(catalog.runbooks.len(), 1000);
    drop(catalog);
    g.throughput(Throughput::Elements(1000));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5));
    g.bench_function("1,000 generated runbooks", |b| {
        b.iter(|| check::load_dir(black_box(many.path())).expect("the generated catalog"))
    });

    // One runbook of 1,000 steps, from text (no file system): parsing alone, then all of it.
    let envs = environments();
    let text = generate_steps(1000);
    g.bench_function("parse YAML of 1,000 steps", |b| {
        b.iter(|| load::yaml::parse(black_box(&text)).expect("valid YAML"))
    });
    g.bench_function("load+check 1,000 steps", |b| {
        b.iter_batched(
            || text.clone(),
            |t| load_one("steps1000.yaml", t, &envs),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_template(c: &mut Criterion) {
    let mut g = c.benchmark_group("template");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let envs = environments();
    let env = envs.get("production").expect("production");
    // What the engine hands a step: inputs, the environment, earlier steps' outputs.
    let ctx = template::value(serde_json::json!({
        "inputs": { "reason": "scheduled" },
        "env": env.template_vars(),
        "steps": {
            "current": { "value": "0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccddeeff0011" },
            "new_password": { "value": "8c1a5e0f22b94d7c9e3b6a1d4f7e2c5b8a0d3f6e9c2b5a18" },
        },
    }));
    let step = "ALTER ROLE musehub PASSWORD '{{ steps.new_password.value }}' \
                -- {{ env.name }} ({{ env.ssm_prefix }}), was {{ steps.current.value }}, \
                because {{ inputs.reason }}";
    assert!(template::render(step, &ctx).is_ok());
    g.bench_function("render a step template", |b| {
        b.iter(|| template::render(black_box(step), &ctx).expect("renders"))
    });
    g.bench_function("render plain text (no template)", |b| {
        b.iter(|| template::render(black_box("docker compose up -d app"), &ctx).expect("renders"))
    });
    let when = "inputs.reason == 'scheduled' and env.ssm_prefix is defined";
    assert!(template::eval_condition(when, &ctx).expect("evaluates"));
    g.bench_function("evaluate a when: condition", |b| {
        b.iter(|| template::eval_condition(black_box(when), &ctx).expect("evaluates"))
    });
    g.finish();
}

/// `n` secrets like a run's generated values (48 hex digits), the same on every run.
fn secrets(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            (0..3)
                .map(|_| {
                    // splitmix64
                    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = x;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    format!("{:016x}", z ^ (z >> 31))
                })
                .collect()
        })
        .collect()
}

/// About 1 KB of log output: what a step's stdout line or an event's text looks like.
fn log_line() -> String {
    let mut line = String::new();
    while line.len() < 1024 {
        line.push_str(
            "2026-11-25T10:00:00.000Z app: PutParameter /musehub/production/DB_PASSWORD \
             version 7 (SecureString) ok; redeploy of /opt/musehub started; ",
        );
    }
    line.truncate(1024);
    line
}

fn bench_redact(c: &mut Criterion) {
    let mut g = c.benchmark_group("redact");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let line = log_line();
    g.throughput(Throughput::Bytes(line.len() as u64));
    for (n, name) in [
        (0, "1 KB line, 0 secrets"),
        (1, "1 KB line, 1 secret"),
        (1000, "1 KB line, 1,000 secrets"),
    ] {
        let r = Redactor::new();
        for s in secrets(n) {
            r.add(&s);
        }
        assert_eq!(r.redact(&line), line.as_str(), "nothing to mask");
        g.bench_function(name, |b| b.iter(|| r.redact(black_box(&line))));
    }
    // The same line holding one of the secrets: the masking itself.
    let all = secrets(1000);
    let r = Redactor::new();
    for s in &all {
        r.add(s);
    }
    let with = format!("{}{}", &line[..line.len() - all[500].len()], all[500]);
    assert!(r.redact(&with).contains(runbook::steps::MASK));
    g.bench_function("1 KB line, 1,000 secrets, 1 masked", |b| {
        b.iter(|| r.redact(black_box(&with)))
    });
    g.finish();
}

fn bench_plan(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let catalog = check::load_dir(&shipped_dir()).expect("runbooks/");
    assert_clean(&catalog);
    for (name, env) in [
        ("ssm-bootstrap", "production"),
        ("db-password", "production"),
        ("db-password", "sandbox"),
    ] {
        let rb = catalog.find(name).expect("a shipped runbook");
        let env = catalog
            .environments
            .get(env)
            .expect("a shipped environment");
        // As `runbook plan NAME --env E` with no input given: defaults only.
        let inputs: IndexMap<_, _> = rb
            .doc
            .inputs
            .iter()
            .filter_map(|(k, spec)| {
                spec.default.clone().map(|value| {
                    (
                        k.clone(),
                        runbook::engine::InputValue {
                            value,
                            secret: spec.secret,
                        },
                    )
                })
            })
            .collect();
        g.bench_function(format!("{name} ({})", env.name), |b| {
            b.iter(|| plan::plan(black_box(rb), env, &inputs))
        });
    }
    g.finish();
}

/// Counts events, so the bus has a sink to hand them to (as the CLI always has).
struct Count(Arc<AtomicUsize>);

impl Sink for Count {
    fn event(&mut self, _: &runbook::engine::event::Stamped) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn engine<'a>(
    rb: &'a Runbook,
    env: &'a Environment,
    run_id: String,
    redactor: Redactor,
    sinks: Vec<Box<dyn Sink>>,
    recorder: Option<Box<dyn Recorder>>,
) -> Engine<'a> {
    static PROMPTER: Nobody = Nobody;
    Engine {
        runbook: rb,
        env,
        inputs: IndexMap::new(),
        prompter: &PROMPTER,
        bus: Bus::new(redactor, sinks),
        interrupt: Interrupt::default(),
        options: RunOptions {
            run_id,
            assume_yes: false,
            selected: None,
            step_by_step: Arc::new(AtomicBool::new(false)),
        },
        recorder: recorder.map(|r| Arc::new(Mutex::new(r))),
        library: std::slice::from_ref(rb),
        nesting: Default::default(),
        resume: Default::default(),
    }
}

fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    // The CLI's runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let envs = environments();
    let env = envs.get("sandbox").expect("sandbox");
    assert!(!env.doc.protected, "no confirmation to ask for");
    let rb = load_one("steps1000.yaml", generate_steps(1000), &envs);
    g.throughput(Throughput::Elements(1000));

    // The engine alone: events are masked and stamped, then counted; no journal.
    let events = Arc::new(AtomicUsize::new(0));
    let run = || {
        let e = engine(
            &rb,
            env,
            "bench".into(),
            Redactor::new(),
            vec![Box::new(Count(events.clone()))],
            None,
        );
        let r = runtime.block_on(e.run());
        assert_eq!(r.status, RunStatus::Done, "{:?}", r.message);
    };
    run();
    // Run started and finished, and each step's start and end at least.
    assert!(events.load(Ordering::Relaxed) >= 2002);
    g.bench_function("run 1,000 generate steps", |b| b.iter(run));

    // As `runbook run` does it: the journal and the event log in a state directory.
    let state = tempfile::tempdir().expect("a temporary directory");
    let runs = AtomicUsize::new(0);
    let inputs = IndexMap::new();
    g.bench_function("run 1,000 generate steps, journaled", |b| {
        b.iter(|| {
            let run_id = format!(
                "20261201-000000-{:04x}",
                runs.fetch_add(1, Ordering::Relaxed) % 0x10000
            );
            let meta = RunMeta {
                run_id: &run_id,
                runbook: &rb,
                env: &env.name,
                inputs: &inputs,
                selected: None,
                aws_identity: None,
                no_preflight: false,
                abandoned: &[],
                series: None,
            };
            let mut journal = RunJournal::create(state.path(), &meta).expect("the journal");
            let redactor = Redactor::new();
            journal.set_redactor(redactor.clone());
            let log = EventLog::open(state.path(), &run_id).expect("the event log");
            let e = engine(
                &rb,
                env,
                run_id,
                redactor,
                vec![Box::new(log)],
                Some(Box::new(journal)),
            );
            let r = runtime.block_on(e.run());
            assert_eq!(r.status, RunStatus::Done, "{:?}", r.message);
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_load,
    bench_template,
    bench_redact,
    bench_plan,
    bench_engine
);
criterion_main!(benches);
