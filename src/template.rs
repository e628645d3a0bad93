//! Templates (minijinja, strict undefined, no filesystem): rendering, and the static reading of
//! which values a template names, so a wrong reference is found before anything runs.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

/// The one template environment: strict, no loader (no filesystem access), no auto-escaping.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("shell_quote", shell_quote);
        env
    })
}

/// `{{ x | shell_quote }}`: the value as one word of a POSIX shell, in single quotes (`'` as
/// `'\''`; the empty string as `''`), so a value put into a command stays data.
fn shell_quote(value: Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    crate::docs::sh_quote(&text)
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
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The dotted names a template reads (`steps.current.value`, `inputs.env`), sorted.
pub fn references(template: &str) -> Result<Vec<String>, TemplateError> {
    let t = environment()
        .template_from_str(template)
        .map_err(|e| convert(&e))?;
    let mut v: Vec<String> = t.undeclared_variables(true).into_iter().collect();
    v.sort();
    Ok(v)
}

/// The dotted names an expression (a `when:`) reads.
pub fn expression_references(expr: &str) -> Result<Vec<String>, TemplateError> {
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
    environment()
        .render_str(template, ctx)
        .map_err(|e| convert(&e))
}

pub fn eval_condition(expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
    let e = environment()
        .compile_expression(strip_braces(expr))
        .map_err(|e| convert(&e))?;
    e.eval(ctx).map(|v| v.is_true()).map_err(|e| convert(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn conditions() {
        let ctx = crate::template::value(serde_json::json!({"inputs": {"which": "db"}}));
        assert!(eval_condition("inputs.which == 'db'", &ctx).unwrap());
        assert!(!eval_condition("{{ inputs.which == 'r2' }}", &ctx).unwrap());
    }
}
