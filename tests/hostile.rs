//! Hostile input: files built to exhaust memory or stack, closed pipes, a panic. Each must end
//! in a located diagnostic or a quiet, documented exit, never a crash.

mod common;

use std::process::Stdio;

use common::Test;

const GOOD: &str = "
    version: 1
    name: good
    summary: A runbook that works
    steps:
      - id: gen
        generate: { format: hex }
";

const ENVS: &str = "
    version: 1
    environments:
      local: {}
";

fn with_file(t: Test, file: &str, text: &str) -> Test {
    std::fs::write(t.runbooks_dir().join(file), text).unwrap();
    t
}

fn header(name: &str) -> String {
    format!("version: 1\nname: {name}\nsummary: s\nsteps:\n")
}

/// The shapes of deep nesting: block lists, block mappings, flow inside block, mixed.
fn deep_shapes() -> Vec<(&'static str, String)> {
    let n = 140_000;
    let mut maps = String::new();
    // 700 levels: 490 KB, under the size limit (deeper would be refused by its size first).
    for i in 0..700 {
        maps.push_str(&"  ".repeat(i + 1));
        maps.push_str("a:\n");
    }
    vec![
        (
            "block-seq",
            format!("{}{}x\n", header("deep"), "- ".repeat(n)),
        ),
        ("block-map", format!("{}{maps}", header("deep"))),
        (
            "mixed",
            format!(
                "{}{}{}{}\n",
                header("deep"),
                "- ".repeat(1000),
                "[".repeat(200),
                "]".repeat(200)
            ),
        ),
        (
            "flow-in-map",
            format!(
                "{}  - a:\n      b: {}{}\n",
                header("deep"),
                "[".repeat(250),
                "]".repeat(250)
            ),
        ),
    ]
}

#[test]
fn deep_nesting_is_refused_at_its_place_in_runbooks() {
    for (shape, text) in deep_shapes() {
        let t = with_file(
            Test::new().environments(ENVS).runbook("good", GOOD),
            "deep.yaml",
            &text,
        )
        .args(&["check"]);
        let r = t.run();
        assert_eq!(r.code, 2, "{shape}: {}", r.stderr);
        assert!(
            r.stderr.contains("runbook::too-deep"),
            "{shape}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("deep.yaml:"), "{shape}: {}", r.stderr);
        assert!(
            r.stderr.contains("more than 64 are refused"),
            "{shape}: {}",
            r.stderr
        );
        // One screen, even when the offending line is 280 KB long.
        assert!(r.stderr.len() < 4000, "{shape}: {} bytes", r.stderr.len());
        // The other runbooks stay usable.
        t.again(&["plan", "good", "--env", "local"]).assert_code(0);
        let list = t.again(&["list"]);
        list.assert_code(0);
        assert!(list.stdout.contains("good"), "{}", list.stdout);
        assert!(list.stderr.contains("1 problem(s)"), "{}", list.stderr);
        t.again(&["run", "good", "--env", "local", "--yes"])
            .assert_code(0);
        let own = t.again(&["plan", "deep", "--env", "local"]);
        assert_eq!(own.code, 2, "{shape}: {}", own.stderr);
        assert!(own.stderr.contains("runbook::too-deep"), "{}", own.stderr);
    }
}

#[test]
fn deep_nesting_is_refused_in_environments() {
    for (shape, text) in deep_shapes() {
        let text = text.replacen(
            &header("deep"),
            "version: 1\nenvironments:\n  local: {}\nsteps:\n",
            1,
        );
        let t = with_file(
            Test::new().runbook("good", GOOD),
            "environments.yaml",
            &text,
        );
        let r = t.again(&["check"]);
        assert_eq!(r.code, 2, "{shape}: {}", r.stderr);
        assert!(
            r.stderr.contains("runbook::too-deep"),
            "{shape}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("environments.yaml:"),
            "{shape}: {}",
            r.stderr
        );
        let run = t.again(&["run", "good", "--env", "local", "--yes"]);
        assert_eq!(run.code, 2, "{shape}: {}", run.stderr);
    }
}

/// Aliases of aliases: 10 levels of 9 make 9^10 copies (gigabytes) from under 600 bytes.
fn alias_bomb(name: &str) -> String {
    let mut s = format!("version: 1\nname: {name}\nsummary: s\n");
    s.push_str("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s.push_str("steps: []\n");
    s
}

#[test]
fn an_alias_bomb_is_refused_by_every_command_without_eating_memory() {
    let bomb = alias_bomb("bomb");
    assert!(bomb.len() < 600);
    let t = with_file(
        Test::new().environments(ENVS).runbook("good", GOOD),
        "bomb.yaml",
        &bomb,
    );
    let r = t.again(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("runbook::alias-budget"), "{}", r.stderr);
    assert!(r.stderr.contains("bomb.yaml:7:"), "{}", r.stderr);
    t.again(&["list"]).assert_code(0);
    t.again(&["plan", "good", "--env", "local"]).assert_code(0);
    t.again(&["run", "good", "--env", "local", "--yes"])
        .assert_code(0);
    let own = t.again(&["run", "bomb", "--env", "local", "--yes"]);
    assert_eq!(own.code, 2, "{}", own.stderr);
    // In environments.yaml too.
    let envs = alias_bomb("x").replace("steps: []\n", "environments: {local: {}}\n");
    let t = with_file(
        Test::new().runbook("good", GOOD),
        "environments.yaml",
        &envs,
    );
    let r = t.again(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("runbook::alias-budget"), "{}", r.stderr);
    assert!(r.stderr.contains("environments.yaml:7:"), "{}", r.stderr);
}

#[test]
fn a_problem_inside_multibyte_text_is_reported_in_every_format() {
    // The expression's error offset lands inside `é` when read against the whole scalar.
    let t = Test::new().environments(ENVS).runbook(
        "mb",
        "
        version: 1
        name: mb
        summary: s
        steps:
          - id: gen
            when: \"{{ 'ééé' ) }}\"
            title: \"ü {{ inputs.nope }} ü\"
            generate: { format: hex }
        ",
    );
    for format in ["human", "json", "github"] {
        let r = t.again(&["check", "--format", format]);
        assert_eq!(r.code, 2, "{format}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{format}: {}", r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr).replace("%3A", ":");
        assert!(all.contains("runbook::template"), "{format}: {all}");
    }
    let r = t.again(&["check", "--format", "github"]);
    assert!(r.stdout.contains("line=6,col=21"), "{}", r.stdout);
}

#[test]
fn a_closed_pipe_ends_no_command_badly_and_a_run_still_finishes() {
    let t = Test::new().environments(ENVS).runbook("good", GOOD);
    for output in ["human", "json"] {
        let mut child = t
            .command()
            .args(["run", "good", "--env", "local", "--yes", "--output", output])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the tool writes anything.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{output}");
    }
    let runs = t.again(&["runs", "--output", "json"]);
    let done = runs
        .stdout
        .lines()
        .filter(|l| l.contains("\"done\""))
        .count();
    assert_eq!(done, 2, "{}", runs.stdout);
    // The read-only commands too.
    for args in [
        &["list"][..],
        &["check"],
        &["plan", "good", "--env", "local"],
        &["schema"],
    ] {
        // The pipe is closed before the command starts: closed after, a fast command could
        // write everything into the pipe's buffer first (a flaky test under load).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = t
            .command()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn a_read_only_command_ends_at_a_closed_pipe_whatever_its_arguments_say() {
    use std::os::unix::process::ExitStatusExt;
    // A runbook named like a command: `show run` and `plan resume` change nothing, so a closed
    // pipe ends them as it ends any Unix tool (SIGPIPE), while a run goes on to its end.
    let t = Test::new()
        .environments(ENVS)
        .runbook("run", &GOOD.replace("name: good", "name: run"))
        .runbook("resume", &GOOD.replace("name: good", "name: resume"));
    for args in [&["show", "run"][..], &["plan", "resume", "--env", "local"]] {
        // The pipe is closed before the command starts: closed after, a fast command could
        // write everything into the pipe's buffer first (a flaky test under load).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = t
            .command()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_panic_prints_one_line_without_its_payload() {
    let r = Test::new()
        .environments(ENVS)
        .env("RUNBOOK_DEBUG_PANIC", "1")
        .args(&["list"])
        .run();
    assert_eq!(r.code, 101, "{}", r.stderr);
    assert!(!r.stderr.contains("canary"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: internal error in runbook"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("please report it"), "{}", r.stderr);
}

/// `cmd` ends by itself within `secs` (a FIFO must not hang it); its output.
fn within(mut cmd: std::process::Command, secs: u64) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{cmd:?} still running after {secs}s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn links_out_of_the_directory_and_special_files_are_refused_unread() {
    const CANARY: &str = "canary-4f1d9a0c7e";
    let outside = tempfile::tempdir().unwrap();
    let creds = outside.path().join("credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_secret_access_key = {CANARY}\n: [\n"),
    )
    .unwrap();
    let t = Test::new()
        .environments(ENVS)
        .runbook("good", GOOD)
        .env("CANARY_SECRET", CANARY);
    let dir = t.runbooks_dir();
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    };
    link(std::path::Path::new("/proc/self/environ"), "environ.yaml");
    link(&creds, "creds.yaml");
    link(std::path::Path::new("/dev/zero"), "zero.yaml");
    link(&dir.join("good.yaml"), "alias.yaml");
    let fifo = std::ffi::CString::new(dir.join("fifo.yaml").to_str().unwrap()).unwrap();
    // SAFETY: a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(dir.join("sub.yaml")).unwrap();

    for format in ["human", "json", "github"] {
        let out = within(
            {
                let mut c = t.command();
                c.args(["check", "--format", format]);
                c
            },
            20,
        );
        // (GitHub annotations escape the `:` of codes.)
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .replace("%3A", ":");
        assert_eq!(out.status.code(), Some(2), "{format}: {all}");
        assert!(!all.contains(CANARY), "{format}: {all}");
        for (file, code) in [
            ("environ.yaml", "runbook::link-outside"),
            ("creds.yaml", "runbook::link-outside"),
            ("zero.yaml", "runbook::link-outside"),
            ("fifo.yaml", "runbook::not-a-file"),
            ("sub.yaml", "runbook::not-a-file"),
        ] {
            assert!(
                all.lines().any(|l| l.contains(file) && all.contains(code)),
                "{format}: {file} {code}: {all}"
            );
        }
        // A link to a file of the same directory is read (it then has the wrong name).
        assert!(all.contains("runbook::name-mismatch"), "{format}: {all}");
    }
    // Named on the command line, each is refused too; the FIFO hangs nothing.
    for name in ["environ.yaml", "creds.yaml", "zero.yaml", "fifo.yaml"] {
        let out = within(
            {
                let mut c = t.command();
                c.arg("check").arg(dir.join(name));
                c
            },
            20,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains(CANARY), "{name}: {err}");
    }
    for args in [&["list"][..], &["run", "good", "--env", "local", "--yes"]] {
        let out = within(
            {
                let mut c = t.command();
                c.args(args);
                c
            },
            20,
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    let own = t.again(&["run", "fifo", "--env", "local", "--yes"]);
    assert_eq!(own.code, 2, "{}", own.stderr);
    assert!(own.stderr.contains("runbook::not-a-file"), "{}", own.stderr);
}

#[test]
fn a_file_over_the_size_limit_is_refused_without_being_read() {
    let t = Test::new().environments(ENVS).runbook("good", GOOD);
    // 50 MB that would parse (one long comment), so only the limit refuses it.
    let mut big = header("big").into_bytes();
    big.extend(b"# ");
    big.resize(50 * 1024 * 1024, b'x');
    std::fs::write(t.runbooks_dir().join("big.yaml"), &big).unwrap();
    drop(big);
    let r = t.again(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("runbook::file-too-large"), "{}", r.stderr);
    assert!(r.stderr.contains("larger than 1024 KiB"), "{}", r.stderr);
    assert!(!r.stderr.contains("xxxxxxxx"), "{}", r.stderr);
    // In environments.yaml too.
    let mut envs = b"version: 1\nenvironments: {local: {}}\n# ".to_vec();
    envs.resize(2 * 1024 * 1024, b'x');
    std::fs::write(t.runbooks_dir().join("environments.yaml"), &envs).unwrap();
    let r = t.again(&["check"]);
    assert!(
        r.stderr.contains("environments.yaml was not read"),
        "{}",
        r.stderr
    );
}

#[test]
fn environment_numbers_out_of_range_are_refused_at_their_place() {
    let t = Test::new().runbook("good", GOOD).environments(
        "
        version: 1
        environments:
          local:
            hosts:
              app: { address: localhost, port: 0, connect_timeout: 0s }
            databases:
              main: { name: x, user: y, port: 0 }
            shared_lock: { expires_after: 1s }
        ",
    );
    let r = t.again(&["check", "--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for (message, line) in [
        ("`port: 0` is out of range", 5),
        ("`connect_timeout: 0s` is out of range", 5),
        ("`port: 0` is out of range", 7),
        ("`expires_after: 1s` is out of range", 8),
    ] {
        assert!(
            common::checked_problems(&r.stdout)
                .iter()
                .map(|p| p.to_string())
                .any(|l| l.contains(message)
                    && l.contains(&format!("\"line\":{line},"))
                    && l.contains("write a value from")),
            "{message} at {line}: {}",
            r.stdout
        );
    }
}

#[test]
fn a_template_that_works_too_much_is_stopped_with_a_clear_error() {
    let long = "x".repeat(2000);
    let rb = format!(
        "version: 1\nname: loops\nsummary: s\ninputs:\n  s: {{ description: d, default: {long} }}\nsteps:\n  - id: a\n    title: \"{{% for a in inputs.s %}}{{% for b in inputs.s %}}x{{% endfor %}}{{% endfor %}}\"\n    generate: {{ format: hex }}\n"
    );
    let t = with_file(Test::new().environments(ENVS), "loops.yaml", &rb);
    let r = t.again(&["plan", "loops", "--env", "local"]);
    assert!(
        r.stdout.contains("too much work"),
        "{}",
        &r.stdout[..r.stdout.len().min(2000)]
    );
    assert!(r.stdout.len() < 100_000, "{} bytes", r.stdout.len());
}

#[test]
fn github_annotations_cannot_be_forged_by_file_names_or_messages() {
    let t = Test::new().environments(ENVS);
    // A file name with a newline, `::`, `,` and `%`: each would end a property or the line.
    let name = "x\n::warning file=a.yaml::All checks passed,y=%0A";
    std::fs::write(
        t.runbooks_dir().join(format!("{name}.yaml")),
        "version: 1\nname: [\n",
    )
    .unwrap();
    // A message quoting a value with a newline.
    let t = with_file(
        t,
        "msg.yaml",
        "version: 1\nname: msg\nsummary: s\nsteps:\n  - id: a\n    generate: { format: \"hex\\n::error::forged\" }\n",
    );
    let r = t.again(&["check", "--format", "github"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    for l in &lines {
        assert!(l.starts_with("::error file="), "{l}");
        // The properties end at the first `::`; the message (data) may hold `::` freely.
        let rest = &l["::error ".len()..];
        let props = &rest[..rest.find("::").unwrap()];
        let keys: Vec<&str> = props
            .split(',')
            .map(|p| p.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["file", "line", "col", "title"], "{l}");
    }
    assert!(
        r.stdout
            .contains("x%0A%3A%3Awarning file=a.yaml%3A%3AAll checks passed%2Cy=%250A.yaml"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("`hex%0A::error::forged`"), "{}", r.stdout);
}

#[test]
fn github_annotations_show_invisible_characters() {
    let t = with_file(
        Test::new().environments(ENVS),
        "x.yaml",
        "version: 1\nname: \"a\\u202eb\"\nsummary: s\nsteps:\n  - id: a\n    generate: { format: hex }\n",
    );
    let r = t.again(&["check", "--format", "github"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stdout.contains('\u{202e}'), "{}", r.stdout);
    assert!(r.stdout.contains(r"a\u{202e}b"), "{}", r.stdout);
}
