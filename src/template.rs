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
        // Bad input is bounded: a template's loops get a budget of work (see MAX_OUTPUT too).
        env.set_fuel(Some(FUEL));
        env
    })
}

/// The work one rendering may do (minijinja's instructions): thousands of times what a
/// runbook's templates need, and far below two nested loops of a thousand.
pub const FUEL: u64 = 100_000;
/// The longest text one template may render to.
pub const MAX_OUTPUT: usize = 1024 * 1024;

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
    fn conditions() {
        let ctx = crate::template::value(serde_json::json!({"inputs": {"which": "db"}}));
        assert!(eval_condition("inputs.which == 'db'", &ctx).unwrap());
        assert!(!eval_condition("{{ inputs.which == 'r2' }}", &ctx).unwrap());
    }
}
