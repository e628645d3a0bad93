//! The secret canary under attack: random secrets, passed through random template filters and
//! re-encoded by remote commands, must not appear in any form in anything the tool writes
//! (stdout, stderr, `--output json`, the event log, the finished journal, the audit log).

mod common;

use base64::Engine;
use common::{Run, Test, sandbox};

/// A small deterministic generator (xorshift64), seeded per case so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Every form of the secret a reader could recognise it in.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let mut forms = vec![
        secret.to_string(),
        secret.to_uppercase(),
        secret.to_lowercase(),
        secret.chars().rev().collect(),
        b64.encode(secret).trim_end_matches('=').to_string(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex.to_uppercase(),
        hex,
    ];
    forms.retain(|f| f.len() >= 8);
    forms
}

/// Whether `hay` holds a form of the secret, also with line breaks removed (a secret split
/// across lines), in any letter case.
fn leaks(hay: &str, secret: &str) -> Option<String> {
    let joined = hay.replace(['\n', '\r'], "").to_lowercase();
    let lower = hay.to_lowercase();
    forms(secret).into_iter().find(|f| {
        let f = f.to_lowercase();
        lower.contains(&f) || joined.contains(&f)
    })
}

fn everything(r: &Run) -> String {
    String::from_utf8_lossy(&r.all_bytes()).into_owned()
}

const FILTERS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "capitalize",
    "reverse",
    "list | join(',')",
    "list | join('\\n')",
    "tojson",
    "replace('a', 'A')",
    "trim",
    "string",
    "lower | reverse | upper",
];

const SLICES: &[&str] = &["[:12]", "[2:]", "[4:20]", "[::-1]", "[::2] | upper"];

/// The secret through random filters and slices in every place a template can show text:
/// a manual step's instructions, a step title and a gate question.
#[test]
fn a_secret_through_any_filter_is_masked_everywhere() {
    for seed in 1..=12u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491));
        let alphabet: &[u8] = match seed % 3 {
            0 => b"0123456789abcdef",
            1 => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            _ => b"abcdefghijklmnopqrstuvwxyz0123456789-_.~!@#%^*()",
        };
        let len = 24 + rng.next(40);
        let secret: String = (0..len)
            .map(|_| alphabet[rng.next(alphabet.len())] as char)
            .collect();
        let mut lines = Vec::new();
        for _ in 0..6 {
            let f = FILTERS[rng.next(FILTERS.len())];
            lines.push(format!("f: {{{{ inputs.token | {f} }}}}"));
        }
        let s = SLICES[rng.next(SLICES.len())];
        lines.push(format!("s: {{{{ (inputs.token{s}) }}}}"));
        lines.push("l: {% for c in inputs.token %}{{ c }} {% endfor %}".into());
        lines.push("m: {% set x = inputs.token | upper %}{{ x ~ '!' }}".into());
        let instructions = lines.join("\n");
        let yaml = format!(
            "
            version: 1
            name: x
            summary: filters
            inputs:
              token: {{ description: A token, secret: true }}
            steps:
              - id: show
                title: 'title {{{{ inputs.token | upper }}}}'
                confirm: 'go {{{{ inputs.token | reverse }}}}?'
                manual.confirm:
                  instructions: {}
                  unattended: skip
            ",
            serde_json::to_string(&instructions).unwrap()
        );
        for output in [&[][..], &["--output", "json"][..]] {
            let mut args = vec!["run", "x", "--env", "sandbox", "--yes"];
            args.extend_from_slice(output);
            let r = Test::new()
                .with_repo_environments()
                .runbook("x", &yaml)
                .env("RUNBOOK_INPUT_TOKEN", &secret)
                .args(&args)
                .run();
            r.assert_code(0);
            assert!(
                r.stderr.contains('•') || r.stdout.contains('•'),
                "{}",
                r.stderr
            );
            if let Some(f) = leaks(&everything(&r), &secret) {
                panic!(
                    "seed {seed}: secret {secret} leaked as {f}:\n{}\n{}",
                    r.stdout, r.stderr
                );
            }
        }
    }
}

/// Text computed from a secret that is too short to be masked stops the step, and says why
/// without showing it.
#[test]
fn a_short_slice_of_a_secret_fails_the_step() {
    let secret = "f00dfeed2badc0de5eed1e55";
    let r = Test::new()
        .with_repo_environments()
        .runbook(
            "x",
            "
            version: 1
            name: x
            summary: a short slice
            inputs:
              token: { description: A token, secret: true }
            steps:
              - id: show
                manual.confirm:
                  instructions: 'first {{ inputs.token[:4] }}'
                  unattended: skip
            ",
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "x", "--env", "sandbox", "--yes"])
        .run();
    r.assert_code(1);
    assert!(r.stderr.contains("too short to be masked"), "{}", r.stderr);
    r.abandon_unfinished();
    assert!(!everything(&r).contains("f00d"), "{}", r.stderr);
}

#[test]
fn a_secret_input_shorter_than_8_characters_is_refused_before_anything_runs() {
    for short in ["", "abc", "1234567"] {
        let r = Test::new()
            .with_repo_environments()
            .runbook(
                "x",
                "
                version: 1
                name: x
                summary: short
                inputs:
                  token: { description: A token, secret: true }
                steps:
                  - id: show
                    manual.confirm:
                      instructions: 'token {{ inputs.token }}'
                ",
            )
            .env("RUNBOOK_INPUT_TOKEN", short)
            .args(&["run", "x", "--env", "sandbox", "--yes"])
            .run();
        r.assert_code(2);
        assert!(r.stderr.contains("at least 8"), "{}", r.stderr);
        assert!(!r.state.join("runs").exists() || common::walk(&r.state.join("runs")).is_empty());
    }
}

/// A remote command that prints the secret re-encoded (hex, upper case, base64 wrapped,
/// folded, reversed halves, a PEM-like multi-line value): every form is masked, in the live
/// output lines and in the step's outputs.
#[test]
fn a_secret_re_encoded_by_a_remote_command_is_masked() {
    let sb = sandbox();
    let pem = "-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+XQ\nZ2xVt9kE1cA0dR7qf3LmNoPqRsTuVwXyZ8a1b2c3d4e5f6g7h8i9j0k1l2m3nQ==\n-----END TEST KEY-----";
    for secret in [
        "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA",
        "f00dfeed2badc0de5eed1e55f00dfeed",
        pem,
    ] {
        let commands = [
            r#"printf %s "$S""#,
            r#"printf %s "$S" | od -An -tx1 | tr -d ' \n'"#,
            r#"printf %s "$S" | od -An -tx1 | tr -d ' \n' | tr a-f A-F"#,
            r#"printf %s "$S" | tr a-z A-Z"#,
            r#"printf %s "$S" | base64 -w 20"#,
            r#"printf 'PASSWORD=%s' "$S" | base64"#,
            r#"printf %s "$S" | fold -w 7"#,
            r#"printf %s "$S" | sed 's/./&\n/g' | head -c 400"#,
            r#"printf '%s' "$S" | cut -c1-20"#,
            r#"printf '{"k":%s}' "$(printf %s "$S" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')""#,
        ];
        let mut steps = String::new();
        for (i, c) in commands.iter().enumerate() {
            steps.push_str(&format!(
                "
              - id: s{i}
                ssh.exec:
                  host: app
                  command: {}
                  env: {{ S: \"{{{{ inputs.token }}}}\" }}
",
                serde_json::to_string(c).unwrap()
            ));
        }
        let yaml = format!(
            "
            version: 1
            name: x
            summary: re-encoded
            inputs:
              token: {{ description: A token, secret: true }}
            steps:{steps}"
        );
        for output in [&[][..], &["--output", "json"][..]] {
            let mut args = vec!["run", "x", "--env", "sandbox", "--yes"];
            args.extend_from_slice(output);
            let r = Test::new()
                .with_sandbox(&sb)
                .runbook("x", &yaml)
                .env("RUNBOOK_INPUT_TOKEN", secret)
                .args(&args)
                .run();
            r.assert_code(0);
            let all = everything(&r);
            let body = secret
                .replace("-----BEGIN TEST KEY-----", "")
                .replace("-----END TEST KEY-----", "");
            for s in [secret, body.trim()] {
                if let Some(f) = leaks(&all, s) {
                    panic!("{secret:?} leaked as {f}:\n{}\n{}", r.stdout, r.stderr);
                }
            }
            // No run of 16 characters of the secret (with line breaks removed) is left.
            let flat = s_flat(secret);
            let joined = all.replace(['\n', '\r'], "").to_lowercase();
            for w in flat.as_bytes().windows(16) {
                let w = String::from_utf8_lossy(w).to_lowercase();
                assert!(
                    !joined.contains(&w),
                    "{w} of {secret:?} leaked:\n{}",
                    r.stderr
                );
            }
        }
    }
}

fn s_flat(s: &str) -> String {
    s.replace(['\n', '\r'], "")
}

/// A template that gives the same text for a secret and for any fixed shadow of it (the pair
/// of both, sorted) is still caught: the shadow is drawn at random for every run.
#[test]
fn a_template_cannot_pair_a_secret_with_its_shadow() {
    let rot13: Vec<String> = ('a'..='z')
        .map(|c| format!("'{c}':'{}'", char::from(b'a' + (c as u8 - b'a' + 13) % 26)))
        .chain(
            ('0'..='9')
                .map(|c| format!("'{c}':'{}'", char::from(b'0' + (c as u8 - b'0' + 5) % 10))),
        )
        .collect();
    let title = format!(
        "{{% set m = {{{}}} %}}{{% set r %}}{{% for c in inputs.token %}}{{{{ m[c] }}}}{{% endfor %}}{{% endset %}}{{{{ [inputs.token|reverse, r|reverse]|sort|join(' ') }}}}",
        rot13.join(",")
    );
    let secret = "abcdefgh12345678";
    let r = Test::new()
        .with_repo_environments()
        .runbook(
            "x",
            &format!(
                "
                version: 1
                name: x
                summary: a pair
                inputs:
                  token: {{ description: A token, secret: true }}
                steps:
                  - id: g
                    title: {}
                    generate: {{ format: hex, bytes: 16 }}
                ",
                serde_json::to_string(&title).unwrap()
            ),
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .run();
    r.assert_code(0);
    if let Some(f) = leaks(&everything(&r), secret) {
        panic!("leaked as {f}:\n{}", r.stdout);
    }
}

/// A secret inside a value that is not marked secret (a command's output that printed it, an
/// input of a nested runbook that is not `secret:`) is followed through templates too.
#[test]
fn a_secret_inside_a_public_value_is_followed_through_templates() {
    let sb = sandbox();
    let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "p",
            r#"
            version: 1
            name: p
            summary: parent
            inputs:
              token: { description: A token, secret: true }
            steps:
              - id: s1
                ssh.exec: { host: app, command: 'printf %s "$TOKEN"', env: { TOKEN: "{{ inputs.token }}" } }
              - id: s2
                title: "{{ steps.s1.stdout | reverse }} {{ steps.s1.stdout | upper | replace('A','-') }}"
                ssh.exec: { host: app, command: "echo {{ steps.s1.stdout[2:] | shell_quote }} | rev" }
              - id: child
                runbook.run: { name: c, inputs: { value: "{{ inputs.token }}" } }
            "#,
        )
        .runbook(
            "c",
            r#"
            version: 1
            name: c
            summary: child
            inputs:
              value: { description: A value }
            steps:
              - id: g
                title: "{{ inputs.value | reverse }}"
                generate: { format: hex, bytes: 16 }
            "#,
        )
        .env("RUNBOOK_INPUT_TOKEN", secret);
    for output in [&[][..], &["--output", "json"][..]] {
        let mut args = vec!["run", "p", "--env", "sandbox", "--yes"];
        args.extend_from_slice(output);
        let r = t.again(&args);
        r.assert_code(0);
        if let Some(f) = leaks(&everything(&r), secret) {
            panic!("leaked as {f}:\n{}\n{}", r.stdout, r.stderr);
        }
        let rev: String = secret.chars().rev().collect();
        assert!(!everything(&r).contains(&rev[..16]), "{}", r.stderr);
    }
}

/// A secret with a carriage return in it, printed by a remote command: the part after the
/// `\r` is masked in the live output too.
#[test]
fn a_secret_holding_a_carriage_return_is_masked_in_live_output() {
    let sb = sandbox();
    let secret = "Zq8Wm3Kd\rRt2Vn5XpLa7b";
    let r = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: cr
            inputs:
              token: { description: A token, secret: true }
            steps:
              - id: s
                ssh.exec: { host: app, command: "printf 'line1 %s\\n' \"$T\"", env: { T: "{{ inputs.token }}" } }
            "#,
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .run();
    r.assert_code(0);
    let all = everything(&r);
    for piece in secret.split('\r') {
        assert!(!all.contains(piece), "{piece} leaked:\n{}", r.stdout);
    }
}

/// A signature made with a secret key (`hmac_sha256`) is itself a secret: shown in a title, a
/// gate and instructions, it is masked, and so is the key; a public key's signature is not.
#[test]
fn a_signature_made_with_a_secret_key_is_masked() {
    let key = "whsec-3f9a7c1e5b2d8f4a6c0e9b7d5f3a1c8e";
    let body = r#"{"zen":"planted"}"#;
    let mac = runbook::state::hmac_sha256(key.as_bytes(), body.as_bytes());
    let sig: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    let public: String = runbook::state::hmac_sha256(b"not-a-secret", body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let yaml = r#"
        version: 1
        name: x
        summary: signatures
        inputs:
          key: { description: A signing key, secret: true }
        steps:
          - id: show
            title: 'sig {{ ''{"zen":"planted"}'' | hmac_sha256(inputs.key) }}'
            confirm: 'send sha256={{ ''{"zen":"planted"}'' | hmac_sha256(inputs.key) | upper }}?'
            manual.confirm:
              unattended: skip
              instructions: |
                signed: sha256={{ '{"zen":"planted"}' | hmac_sha256(inputs.key) }}
                public: {{ '{"zen":"planted"}' | hmac_sha256('not-a-secret') }}
        "#;
    for output in [&[][..], &["--output", "json"][..]] {
        let mut args = vec!["run", "x", "--env", "sandbox", "--yes"];
        args.extend_from_slice(output);
        let r = Test::new()
            .with_repo_environments()
            .runbook("x", yaml)
            .env("RUNBOOK_INPUT_KEY", key)
            .args(&args)
            .run();
        r.assert_code(0);
        let all = everything(&r);
        for secret in [key, sig.as_str()] {
            if let Some(f) = leaks(&all, secret) {
                panic!("{secret} leaked as {f}:\n{}\n{}", r.stdout, r.stderr);
            }
        }
        assert!(
            all.contains(&public),
            "a public key's signature stays readable"
        );
    }
}
