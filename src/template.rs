//! Templates (minijinja, strict undefined, no filesystem): rendering, and the static reading of
//! which values a template names, so a wrong reference is found before anything runs.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::diag::Code;
use crate::load::yaml::Node;

/// The one template environment: strict, no loader (no filesystem access), no auto-escaping.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| build(false))
}

/// Marks around the text of every `{{ … }}` in a [`render_marked`] rendering (characters of
/// Unicode's private use area, which no runbook text has a reason to hold).
pub const MARK_OPEN: char = '\u{E000}';
pub const MARK_CLOSE: char = '\u{E001}';

/// The same environment, with every expression's output between [`MARK_OPEN`] and
/// [`MARK_CLOSE`]: which parts of a rendering came from which value (`engine::taint`).
fn marked() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| build(true))
}

fn build(marked: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("shell_quote", shell_quote);
    env.add_filter("hmac_sha256", hmac_sha256);
    env.add_filter("slack_escape", slack_escape);
    // Bad input is bounded: a template's loops get a budget of work (see MAX_OUTPUT too).
    env.set_fuel(Some(FUEL));
    if marked {
        env.set_formatter(|out, state, value| {
            out.write_str(MARK_OPEN.encode_utf8(&mut [0; 4]))
                .map_err(minijinja::Error::from)?;
            minijinja::escape_formatter(out, state, value)?;
            out.write_str(MARK_CLOSE.encode_utf8(&mut [0; 4]))
                .map_err(minijinja::Error::from)
        });
    }
    env
}

/// A word of a POSIX shell holding `s` exactly: single quotes, `'` as `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `{{ x | shell_quote }}`: the value as one word of a POSIX shell, in single quotes (`'` as
/// `'\''`; the empty string as `''`), so a value put into a command stays data.
fn shell_quote(value: Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    sh_quote(&text)
}

/// `{{ body | hmac_sha256(key) }}`: the HMAC-SHA256 of the text, keyed with the key's text
/// (both as UTF-8), in lower-case hex: a webhook signature (`X-Hub-Signature-256: sha256=…`).
/// Made from a secret key, the result is a secret too: a run follows it like any text computed
/// from a secret (`engine::taint`), so it is masked.
fn hmac_sha256(value: Value, key: Value) -> Result<String, minijinja::Error> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let key = text(&key);
    if key.is_empty() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "the key of `hmac_sha256` is empty",
        ));
    }
    let value = text(&value);
    // In a plan, a value known only at run time is a placeholder (`⟨steps.key.value⟩`) and a
    // secret input is masked: a hash of that text would look like the real signature. It stays
    // a placeholder instead.
    let unknown = |t: &str| t.contains(UNKNOWN_OPEN) || t.contains(crate::secret::MASK);
    if unknown(&key) || unknown(&value) {
        return Ok(format!("{UNKNOWN_OPEN}hmac_sha256 of a run-time value⟩"));
    }
    let mac = crate::state::hmac_sha256(key.as_bytes(), value.as_bytes());
    Ok(mac.iter().map(|b| format!("{b:02x}")).collect())
}

/// What opens a placeholder of a value known only at run time, in a plan's rendering
/// (`⟨steps.key.value⟩`, see `plan::context`).
pub const UNKNOWN_OPEN: &str = "⟨";

/// `{{ text | slack_escape }}`: `&`, `<` and `>` as Slack's message format wants them
/// (`&amp;`, `&lt;`, `&gt;`), so a text posted to a chat webhook (a finding someone typed)
/// cannot mention `<!channel>` or hide a link as `<https://…|click>`.
fn slack_escape(value: Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    slack_escaped(&text)
}

/// `text` with `&`, `<` and `>` escaped as Slack's message format wants them.
pub fn slack_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The work one rendering may do (minijinja's instructions): thousands of times what a
/// runbook's templates need, and far below two nested loops of a thousand.
pub const FUEL: u64 = 100_000;
/// The longest text one template may render to.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// The most tokens (names, operators, literals, brackets; not the plain text around them) one
/// template or expression may hold. minijinja's parser and compiler recurse once per operator
/// of a chain (`- - - x`, `a ~ b ~ …`, `x | f | f …`): without a bound, a few hundred KiB of
/// operators overflow the stack. Real templates hold tens.
pub const MAX_TOKENS: usize = 1000;

/// Refuse a template too big to be compiled safely, before minijinja sees it.
fn guard(template: &str, in_expr: bool) -> Result<(), TemplateError> {
    use minijinja::machinery::{Token, tokenize};
    let mut n = 0usize;
    for t in tokenize(
        template,
        in_expr,
        minijinja::syntax::SyntaxConfig::default(),
    ) {
        match t {
            Ok((Token::TemplateData(_), _)) => {}
            Ok((_, span)) => {
                n += 1;
                if n > MAX_TOKENS {
                    let at = span.start_offset as usize;
                    return Err(TemplateError {
                        message: format!(
                            "the template holds more than {MAX_TOKENS} names and operators"
                        ),
                        range: Some(at..at),
                    });
                }
            }
            // A syntax error: the compiler reports it, having read no more than this.
            Err(_) => break,
        }
    }
    Ok(())
}

/// A template context from any serializable value.
pub fn value<T: serde::Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// True when a string contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// A template syntax error with its byte range within the template text.
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub message: String,
    pub range: Option<std::ops::Range<usize>>,
}

fn convert(e: &minijinja::Error) -> TemplateError {
    let message = match e.detail() {
        Some(d) => format!("{}: {d}", kind_text(e)),
        None => kind_text(e),
    };
    TemplateError {
        message,
        range: e.range(),
    }
}

fn kind_text(e: &minijinja::Error) -> String {
    match e.kind() {
        minijinja::ErrorKind::SyntaxError => "template syntax error".into(),
        minijinja::ErrorKind::UndefinedError => "undefined value".into(),
        minijinja::ErrorKind::UnknownFilter => "unknown filter".into(),
        minijinja::ErrorKind::UnknownFunction => "unknown function".into(),
        minijinja::ErrorKind::InvalidOperation => "invalid operation".into(),
        minijinja::ErrorKind::OutOfFuel => {
            format!("the template does too much work (more than {FUEL} steps)")
        }
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The dotted names a template reads (`steps.current.value`, `inputs.env`), sorted.
pub fn references(template: &str) -> Result<Vec<String>, TemplateError> {
    guard(template, false)?;
    let t = environment()
        .template_from_str(template)
        .map_err(|e| convert(&e))?;
    let mut v: Vec<String> = t.undeclared_variables(true).into_iter().collect();
    v.sort();
    Ok(v)
}

/// The dotted names an expression (a `when:`) reads.
pub fn expression_references(expr: &str) -> Result<Vec<String>, TemplateError> {
    guard(strip_braces(expr), true)?;
    let e = environment()
        .compile_expression(strip_braces(expr))
        .map_err(|e| convert(&e))?;
    let mut v: Vec<String> = e.undeclared_variables(true).into_iter().collect();
    v.sort();
    Ok(v)
}

/// `{{ x }}` written where an expression is expected is read as `x`.
pub fn strip_braces(expr: &str) -> &str {
    let t = expr.trim();
    t.strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .map_or(t, str::trim)
}

pub fn render(template: &str, ctx: &Value) -> Result<String, TemplateError> {
    if !is_template(template) {
        return Ok(template.to_string());
    }
    guard(template, false)?;
    let out = environment()
        .render_str(template, ctx)
        .map_err(|e| convert(&e))?;
    if out.len() > MAX_OUTPUT {
        return Err(TemplateError {
            message: format!(
                "the template renders to more than {} KiB",
                MAX_OUTPUT / 1024
            ),
            range: None,
        });
    }
    Ok(out)
}

/// Every string of a step's parameters rendered (for plans, docs and preflight; a run renders
/// through `engine::taint`, which also follows secrets).
pub fn render_node(params: &Node, ctx: &Value) -> Result<Node, String> {
    params.map_scalars(&mut |_, s| render(s, ctx).map_err(|e| format!("template: {}", e.message)))
}

/// A rendering with the output of every expression marked (see [`MARK_OPEN`]); for analysis
/// only, never for use.
pub fn render_marked(template: &str, ctx: &Value) -> Result<String, TemplateError> {
    guard(template, false)?;
    marked().render_str(template, ctx).map_err(|e| convert(&e))
}

pub fn eval_condition(expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
    guard(strip_braces(expr), true)?;
    let e = environment()
        .compile_expression(strip_braces(expr))
        .map_err(|e| convert(&e))?;
    e.eval(ctx).map(|v| v.is_true()).map_err(|e| convert(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long chains of operators are refused, and whatever is accepted compiles, is checked
    /// and renders within a test thread's 2 MiB stack (a debug build's frames are the largest).
    #[test]
    fn operator_chains_are_bounded() {
        let run = || {
            let ctx = value(serde_json::json!({"x": "1", "y": {"y": "1"}}));
            for (pat, end) in [
                ("- ", "x"),
                ("not ", "x"),
                ("x ~ ", "x"),
                ("x - ", "x"),
                ("x | upper | ", "x"),
                ("(", "x"),
            ] {
                for n in [MAX_TOKENS / 2 - 2, 100_000] {
                    let body = pat.repeat(n)
                        + end
                        + if pat == "(" { ")" } else { "" }
                            .repeat(if pat == "(" { n } else { 0 })
                            .as_str();
                    let t = format!("{{{{ {body} }}}}");
                    let r = references(&t);
                    let _ = static_problems(&t);
                    let _ = render(&t, &ctx);
                    let _ = render_marked(&t, &ctx);
                    let _ = expression_references(&body);
                    let _ = eval_condition(&body, &ctx);
                    if n > MAX_TOKENS {
                        let e = r.expect_err("refused");
                        assert!(e.message.contains("more than"), "{}", e.message);
                    }
                }
            }
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn nested_references_are_dotted() {
        let r = references(
            "{{ env.ssm_prefix }}/DB {{ steps.current.value }} {{ inputs.env | upper }}",
        )
        .unwrap();
        assert_eq!(
            r,
            vec!["env.ssm_prefix", "inputs.env", "steps.current.value"]
        );
    }

    #[test]
    fn syntax_error_has_a_range() {
        let e = references("a {{ steps.x. }} b").unwrap_err();
        assert!(e.message.contains("syntax error"), "{}", e.message);
        assert!(e.range.is_some());
    }

    #[test]
    fn shell_quote_makes_one_word() {
        let ctx = value(serde_json::json!({"x": "it's $(rm -rf /); `x`", "e": "", "n": 5}));
        assert_eq!(
            render("echo {{ x | shell_quote }}", &ctx).unwrap(),
            "echo 'it'\\''s $(rm -rf /); `x`'"
        );
        assert_eq!(render("{{ e | shell_quote }}", &ctx).unwrap(), "''");
        assert_eq!(render("{{ n | shell_quote }}", &ctx).unwrap(), "'5'");
    }

    /// RFC 4231's test case 2, and GitHub's documented webhook example (secret "It's a Secret
    /// to Everybody", payload "Hello, World!").
    #[test]
    fn slack_escape_leaves_no_mention_or_link() {
        let ctx = value(serde_json::json!({"t": "<!channel> & <https://evil|click>"}));
        assert_eq!(
            render("{{ t | slack_escape }}", &ctx).unwrap(),
            "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
        );
    }

    #[test]
    fn hmac_sha256_is_the_hex_of_the_keyed_hash() {
        let ctx =
            value(serde_json::json!({"k": "Jefe", "gh": "It's a Secret to Everybody", "n": 7}));
        assert_eq!(
            render(
                "{{ 'what do ya want for nothing?' | hmac_sha256(k) }}",
                &ctx
            )
            .unwrap(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            render("sha256={{ 'Hello, World!' | hmac_sha256(gh) }}", &ctx).unwrap(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        // A number is signed as its text; an empty or missing key is an error, not a hash.
        assert_eq!(
            render("{{ n | hmac_sha256(k) }}", &ctx).unwrap(),
            render("{{ '7' | hmac_sha256(k) }}", &ctx).unwrap()
        );
        let e = render("{{ 'x' | hmac_sha256('') }}", &ctx).unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
        assert!(render("{{ 'x' | hmac_sha256 }}", &ctx).is_err());
        assert!(static_problems("{{ 'x' | hmac_sha256(k) }}").is_empty());
        // A plan's placeholder or masked secret is not hashed as if it were the value.
        for key in ["⟨steps.key.value⟩", crate::secret::MASK] {
            let ctx = value(serde_json::json!({ "k": key }));
            assert_eq!(
                render("sha256={{ 'body' | hmac_sha256(k) }}", &ctx).unwrap(),
                "sha256=⟨hmac_sha256 of a run-time value⟩"
            );
        }
    }

    #[test]
    fn conditions() {
        let ctx = crate::template::value(serde_json::json!({"inputs": {"which": "db"}}));
        assert!(eval_condition("inputs.which == 'db'", &ctx).unwrap());
        assert!(!eval_condition("{{ inputs.which == 'r2' }}", &ctx).unwrap());
    }
}

/// What a template uses that cannot work, found without rendering it: a filter, test or
/// function that does not exist, and a variable set over one of the names runs give values
/// (`{% set steps = 1 %}`), which would silently hide them. Each with its byte range.
pub fn static_problems(template: &str) -> Vec<StaticProblem> {
    if guard(template, false).is_err() {
        // Reported by `references`.
        return Vec::new();
    }
    let Ok(t) = environment().template_from_str(template) else {
        // A syntax error is reported by `references`.
        return Vec::new();
    };
    let compiled = minijinja::machinery::get_compiled_template(&t);
    let mut out = Vec::new();
    let mut locals: Vec<&str> = Vec::new();
    let mut calls: Vec<(u32, &str)> = Vec::new();
    for ins in std::iter::once(&compiled.instructions).chain(compiled.blocks.values()) {
        let mut idx = 0;
        while let Some(i) = ins.get(idx) {
            use minijinja::machinery::Instruction as I;
            let range = || {
                ins.get_span(idx)
                    .map(|s| s.start_offset as usize..s.end_offset as usize)
            };
            match i {
                I::ApplyFilter(name, ..) if !known(Probe::Filter, name) => {
                    out.push(unknown(Probe::Filter, name, template, range()))
                }
                I::PerformTest(name, ..) if !known(Probe::Test, name) => {
                    out.push(unknown(Probe::Test, name, template, range()))
                }
                I::CallFunction(name, _) => calls.push((idx, name)),
                I::StoreLocal(name) => {
                    if ROOTS.contains(name) {
                        out.push(StaticProblem {
                            code: Code::TemplateShadows,
                            error: TemplateError {
                                message: format!(
                                    "`{name}` is set in the template, which hides the run's `{name}`"
                                ),
                                range: find_word(template, name).or_else(range),
                            },
                            help: Some(format!("choose another name; `{name}` is where templates read the run's values")),
                        });
                    }
                    locals.push(name);
                }
                _ => {}
            }
            idx += 1;
        }
    }
    for (_, name) in calls {
        if !locals.contains(&name)
            && !LOCAL_CALLABLES.contains(&name)
            && !known(Probe::Function, name)
        {
            out.push(unknown(Probe::Function, name, template, None));
        }
    }
    out
}

/// The names runs give values to.
const ROOTS: &[&str] = &["inputs", "env", "steps"];

/// Callables a template has without defining them.
const LOCAL_CALLABLES: &[&str] = &["loop", "caller", "super", "self", "varargs", "kwargs"];

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Probe {
    Filter,
    Test,
    Function,
}

/// Whether the environment has a filter, test or global function of this name: asked of the
/// environment itself (a tiny rendering), so the answer follows minijinja's own list.
fn known(kind: Probe, name: &str) -> bool {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<(Probe, String), bool>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(k) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(kind, name.to_string()))
    {
        return *k;
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let (text, unknown_kind) = match kind {
        Probe::Filter => (
            format!("{{{{ x | {name} }}}}"),
            minijinja::ErrorKind::UnknownFilter,
        ),
        Probe::Test => (
            format!("{{{{ x is {name} }}}}"),
            minijinja::ErrorKind::UnknownTest,
        ),
        Probe::Function => (
            format!("{{{{ {name}() }}}}"),
            minijinja::ErrorKind::UnknownFunction,
        ),
    };
    let ctx = value(serde_json::json!({ "x": "" }));
    let is_known = match environment().render_str(&text, ctx) {
        Ok(_) => true,
        Err(e) => {
            e.kind() != unknown_kind
                && !(kind == Probe::Function && e.kind() == minijinja::ErrorKind::UndefinedError)
        }
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((kind, name.to_string()), is_known);
    is_known
}

/// A problem [`static_problems`] found, with its diagnostic code and help.
#[derive(Debug, Clone)]
pub struct StaticProblem {
    pub code: Code,
    pub error: TemplateError,
    pub help: Option<String>,
}

/// Names a template is likely to mean, for "did you mean": minijinja's common built-ins and
/// this project's own (each kept only when the environment has it).
const LIKELY: &[(Probe, &[&str])] = &[
    (
        Probe::Filter,
        &[
            "abs",
            "attr",
            "batch",
            "bool",
            "capitalize",
            "count",
            "default",
            "dictsort",
            "escape",
            "first",
            "float",
            "groupby",
            "indent",
            "int",
            "items",
            "join",
            "last",
            "length",
            "lines",
            "list",
            "lower",
            "map",
            "max",
            "min",
            "pprint",
            "reject",
            "rejectattr",
            "replace",
            "reverse",
            "round",
            "safe",
            "select",
            "selectattr",
            "shell_quote",
            "hmac_sha256",
            "slack_escape",
            "slice",
            "sort",
            "split",
            "string",
            "sum",
            "title",
            "tojson",
            "trim",
            "unique",
            "upper",
        ],
    ),
    (
        Probe::Test,
        &[
            "boolean",
            "defined",
            "divisibleby",
            "endingwith",
            "eq",
            "even",
            "false",
            "filter",
            "float",
            "ge",
            "gt",
            "in",
            "integer",
            "iterable",
            "le",
            "lower",
            "lt",
            "mapping",
            "ne",
            "none",
            "number",
            "odd",
            "safe",
            "sameas",
            "sequence",
            "startingwith",
            "string",
            "test",
            "true",
            "undefined",
            "upper",
        ],
    ),
    (Probe::Function, &["debug", "dict", "namespace", "range"]),
];

fn unknown(
    kind: Probe,
    name: &str,
    template: &str,
    range: Option<std::ops::Range<usize>>,
) -> StaticProblem {
    let (code, what) = match kind {
        Probe::Filter => (Code::UnknownFilter, "filter"),
        Probe::Test => (Code::UnknownTest, "test"),
        Probe::Function => (Code::UnknownFunction, "function"),
    };
    let names: Vec<&str> = LIKELY
        .iter()
        .filter(|(k, _)| *k == kind)
        .flat_map(|(_, n)| n.iter().copied())
        .filter(|n| known(kind, n))
        .collect();
    let help = crate::diag::did_you_mean(name, names.iter().copied())
        .unwrap_or_else(|| format!("known {what}s include: {}", names.join(", ")));
    StaticProblem {
        code,
        error: TemplateError {
            message: format!("unknown {what} `{name}`"),
            range: find_word(template, name).or(range),
        },
        help: Some(help),
    }
}

/// The first place `word` stands alone in `text` (not inside a longer name).
fn find_word(text: &str, word: &str) -> Option<std::ops::Range<usize>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word)
        .map(|(i, _)| i)
        .find(|&i| {
            !text[..i].chars().next_back().is_some_and(is_name)
                && !text[i + word.len()..].chars().next().is_some_and(is_name)
        })
        .map(|i| i..i + word.len())
}

#[cfg(test)]
mod static_tests {
    use super::*;

    #[test]
    fn unknown_filters_tests_and_functions_are_found_before_a_run() {
        let p = static_problems("a {{ x | uper }} {{ y is evn }} {{ nope(1) }} {{ x | upper }}");
        let m: Vec<&str> = p.iter().map(|e| e.error.message.as_str()).collect();
        assert_eq!(
            m,
            vec![
                "unknown filter `uper`",
                "unknown test `evn`",
                "unknown function `nope`"
            ]
        );
        assert_eq!(p[0].error.range, Some(9..13));
        assert_eq!(p[0].help.as_deref(), Some("did you mean `upper`?"));
        assert!(static_problems("{{ x | upper | replace('a', 'b') }} {{ range(3) | list }} {% if x is defined %}{% endif %}").is_empty());
        assert!(static_problems("{% for i in [1] %}{{ loop.index }}{% endfor %}").is_empty());
    }

    #[test]
    fn setting_a_root_name_is_refused() {
        for t in [
            "{% set steps = 1 %}",
            "{% for env in [1] %}{% endfor %}",
            "{% set inputs = {} %}{{ inputs }}",
        ] {
            let p = static_problems(t);
            assert_eq!(
                p.len(),
                1,
                "{t}: {:?}",
                p.iter().map(|e| &e.error.message).collect::<Vec<_>>()
            );
            assert!(
                p[0].error.message.contains("hides the run's"),
                "{}",
                p[0].error.message
            );
        }
        assert!(static_problems("{% set stepsx = 1 %}{{ stepsx }}").is_empty());
    }
}
