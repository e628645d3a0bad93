//! A statement and its values: bind parameters sent as text (the server converts them), and
//! the rows returned as JSON, typed by their columns.

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::connect::db_error;
use crate::steps::kind::StepError;

pub(super) async fn run_sql(
    client: &Client,
    sql: &str,
    params: &[Option<String>],
) -> Result<(Vec<serde_json::Value>, u64), StepError> {
    let what = "the SQL failed";
    if params.is_empty() {
        // The simple protocol returns every value as text and allows several statements; the
        // column types, when the statement can be prepared, turn numbers and booleans back
        // into JSON numbers and booleans.
        let types: Option<Vec<Type>> = client
            .prepare(sql)
            .await
            .ok()
            .map(|s| s.columns().iter().map(|c| c.type_().clone()).collect());
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| db_error(what, &e))?;
        let mut rows = Vec::new();
        let mut affected = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::Row(r) => {
                    let mut obj = serde_json::Map::new();
                    for (i, col) in r.columns().iter().enumerate() {
                        let ty = types.as_ref().and_then(|t| t.get(i));
                        obj.insert(col.name().to_string(), text_value(r.get(i), ty));
                    }
                    rows.push(serde_json::Value::Object(obj));
                }
                SimpleQueryMessage::CommandComplete(n) => affected += n,
                _ => {}
            }
        }
        return Ok((rows, affected));
    }
    let stmt = client.prepare(sql).await.map_err(|e| db_error(what, &e))?;
    for c in stmt.columns() {
        if !decodable(c.type_()) {
            return Err(StepError::new(format!(
                "column `{}` has type `{}`, which a query with `params` cannot return",
                c.name(),
                c.type_().name()
            ))
            .with_help(format!("cast it in the SQL: `{}::text`", c.name())));
        }
    }
    let binds: Vec<TextParam> = params.iter().map(|p| TextParam(p.as_deref())).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    let result = client
        .query(&stmt, &refs)
        .await
        .map_err(|e| db_error(what, &e))?;
    let rows: Vec<serde_json::Value> = result
        .iter()
        .map(|row| {
            let mut obj = serde_json::Map::new();
            for (i, col) in row.columns().iter().enumerate() {
                let v = row
                    .try_get::<_, Cell>(i)
                    .map_or(serde_json::Value::Null, |c| c.0);
                obj.insert(col.name().to_string(), v);
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    let n = rows.len() as u64;
    Ok((rows, n))
}

/// A value from the simple protocol (text), typed by its column when known.
fn text_value(v: Option<&str>, ty: Option<&Type>) -> serde_json::Value {
    let Some(v) = v else {
        return serde_json::Value::Null;
    };
    let typed = match ty {
        Some(t) if *t == Type::BOOL => Some(serde_json::Value::Bool(v == "t")),
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(t) => {
            v.parse::<i64>().ok().map(Into::into)
        }
        Some(t) if [Type::JSON, Type::JSONB].contains(t) => serde_json::from_str(v).ok(),
        _ => None,
    };
    typed.unwrap_or_else(|| v.into())
}

fn decodable(t: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::JSON,
        Type::JSONB,
    ]
    .contains(t)
}

/// A column value of the binary protocol, as JSON.
struct Cell(serde_json::Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let v = match *ty {
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT8 => i64::from_sql(ty, raw)?.into(),
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.into(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.into(),
            Type::JSON => serde_json::from_slice(raw)?,
            // jsonb's binary form is a version byte, then the text.
            Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
            _ => String::from_utf8_lossy(raw).into_owned().into(),
        };
        Ok(Cell(v))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(serde_json::Value::Null))
    }
    fn accepts(ty: &Type) -> bool {
        decodable(ty)
    }
}

/// A bind parameter sent in text format, so the server converts it to whatever type `$n` has.
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        // The `bytes` buffer as postgres-types re-exports it (for its `to_sql_checked!`), which
        // spares a direct dependency on `bytes`.
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_take_their_column_type() {
        assert_eq!(
            text_value(Some("42"), Some(&Type::INT4)),
            serde_json::json!(42)
        );
        assert_eq!(
            text_value(Some("t"), Some(&Type::BOOL)),
            serde_json::json!(true)
        );
        assert_eq!(
            text_value(Some("42"), Some(&Type::TEXT)),
            serde_json::json!("42")
        );
        assert_eq!(text_value(Some("1.50"), None), serde_json::json!("1.50"));
        assert_eq!(text_value(None, Some(&Type::INT4)), serde_json::Value::Null);
    }
}
