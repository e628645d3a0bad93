//! An input's value checked against its declaration (`type:`, `choices:` with `multiple:`,
//! `not_future:`) and written in one normal form, which the journal keeps and a resume reads
//! back; and the value templates see (a number, a bool, a list).
//!
//! One rule for every way a value arrives: `--input`, `RUNBOOK_INPUT_<NAME>`, the terminal
//! prompt, a default (checked when the runbook is checked) and a `runbook.run` step's inputs.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{InputSpec, InputType};

/// Why a value does not fit its input: a message naming the input and what was given, and
/// what to give instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `input `name`: ` and [`Refused::what`].
    pub message: String,
    /// What is wrong with the value, naming it: "`ten` is not an integer".
    pub what: String,
    pub help: String,
    /// A time later than `now` (the help says when now is).
    pub future: bool,
}

impl Refused {
    fn new(name: &str, what: String, help: String) -> Refused {
        Refused {
            message: format!("input `{name}`: {what}"),
            what,
            help,
            future: false,
        }
    }
}

/// The word that stands for every choice of a `multiple:` input.
pub const ALL: &str = "all";

/// The most characters of a refused value an error repeats.
const SHOWN: usize = 80;

/// `value` in the normal form of its input (an integer without sign or leading zeros, a
/// datetime in UTC, several choices in the order of `choices:` joined by commas), or why it
/// does not fit. A secret input's value is never judged here (its type is a string; a
/// refusal would have to name it). `now` is when the value is given, for `not_future`.
pub fn normalize(
    name: &str,
    spec: &InputSpec,
    value: &str,
    now: SystemTime,
) -> Result<String, Refused> {
    if spec.secret {
        return Ok(value.to_string());
    }
    if spec.multiple {
        return several(name, spec, value);
    }
    let refuse =
        |what: &str, help: String| Refused::new(name, format!("`{}` {what}", shown(value)), help);
    match spec.kind {
        InputType::String => Ok(value.to_string()),
        InputType::Integer => integer(value).map(|i| i.to_string()).ok_or_else(|| {
            // Digits that do not fit are a number, only too big: say so.
            let digits = value.strip_prefix('-').unwrap_or(value);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                refuse(
                    "is out of range",
                    format!("give a whole number from {} to {}", i64::MIN, i64::MAX),
                )
            } else {
                refuse(
                    "is not an integer",
                    "give a whole number, e.g. 3 or -1".into(),
                )
            }
        }),
        // Any letter case: a template renders a bool as `True`/`False` (a parent runbook
        // giving its own boolean input to a nested one).
        InputType::Boolean => match value.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err(refuse("is not a boolean", "give `true` or `false`".into())),
        },
        InputType::Datetime => {
            let t = Datetime::parse(value).map_err(|why| refuse(why.what(), why.help()))?;
            if spec.not_future && t.after(now) {
                return Err(Refused {
                    future: true,
                    ..refuse(
                        "is in the future",
                        format!(
                            "give a time no later than now, {}; a local time needs its own \
                         offset (e.g. +01:00), not `Z`",
                            Datetime::from_system(now).to_rfc3339_seconds()
                        ),
                    )
                });
            }
            Ok(t.to_rfc3339())
        }
    }
}

/// What templates see of a value in its normal form: a number, a bool, a list for
/// `multiple:`, else the text (a value that does not read as its type, from an older journal,
/// stays text).
pub fn template_value(spec: &InputSpec, value: &str) -> serde_json::Value {
    if spec.secret {
        return value.into();
    }
    if spec.multiple {
        return serde_json::Value::Array(
            value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(|v| v.into())
                .collect(),
        );
    }
    match spec.kind {
        InputType::Integer => integer(value).map_or_else(|| value.into(), Into::into),
        InputType::Boolean => match value {
            "true" => true.into(),
            "false" => false.into(),
            _ => value.into(),
        },
        InputType::String | InputType::Datetime => value.into(),
    }
}

/// How a terminal asks for a typed value: the description, and the form expected.
pub fn prompt_label(spec: &InputSpec) -> String {
    let form = if spec.multiple {
        let choices = spec.choices.as_deref().unwrap_or_default().join(", ");
        format!("one or more of {choices}, separated by commas, or {ALL}")
    } else {
        match spec.kind {
            InputType::String => return spec.description.clone(),
            InputType::Integer => "a whole number".into(),
            InputType::Boolean => "true or false".into(),
            InputType::Datetime if spec.not_future => {
                "RFC 3339, e.g. 2026-11-20T14:00Z, not in the future".into()
            }
            InputType::Datetime => "RFC 3339, e.g. 2026-11-20T14:00Z".into(),
        }
    };
    format!("{} ({form})", spec.description)
}

/// Whether the input is asked for as free text checked by [`normalize`] (rather than a
/// plain question or a list to choose one from, which typed choices still get).
pub fn asked_checked(spec: &InputSpec) -> bool {
    !spec.secret && (spec.multiple || (spec.kind != InputType::String && spec.choices.is_none()))
}

fn integer(value: &str) -> Option<i64> {
    // `+3` and ` 3` are not what someone means by a number in a file; Rust would take `+3`.
    if value.starts_with('+') {
        return None;
    }
    value.parse::<i64>().ok()
}

fn shown(value: &str) -> String {
    let visible = crate::display::visible_line(value);
    if visible.chars().count() > SHOWN {
        let cut: String = visible.chars().take(SHOWN).collect();
        format!("{cut}…")
    } else {
        visible.into_owned()
    }
}

/// Several choices, `all`, or a refusal naming the choices.
fn several(name: &str, spec: &InputSpec, value: &str) -> Result<String, Refused> {
    let choices = spec.choices.as_deref().unwrap_or_default();
    let choose = || {
        format!(
            "choose from: {}; or {ALL} for every one",
            choices.join(", ")
        )
    };
    let value = value.trim();
    // A list as a template renders it (`['db-password', 'runner-token']`: a parent runbook
    // giving its own several choices to a nested one) reads as its items. A choice has no
    // comma, so the items split on commas.
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let items: Option<Vec<&str>> = inner
            .split(',')
            .map(|i| {
                let i = i.trim();
                ["'", "\""]
                    .iter()
                    .find_map(|q| i.strip_prefix(q).and_then(|i| i.strip_suffix(q)))
            })
            .collect();
        if let Some(items) = items {
            return several(name, spec, &items.join(","));
        }
    }
    if value == ALL {
        return Ok(choices.join(","));
    }
    if value.is_empty() {
        return Err(Refused::new(
            name,
            "no value is given".into(),
            format!("give at least one value; {}", choose()),
        ));
    }
    let mut picked = vec![false; choices.len()];
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(Refused::new(
                name,
                format!("`{}` has an empty item", shown(value)),
                format!("separate the values by single commas; {}", choose()),
            ));
        }
        if item == ALL {
            return Err(Refused::new(
                name,
                format!("`{ALL}` is given with other values"),
                format!("`{ALL}` already means every choice: give it alone"),
            ));
        }
        match choices.iter().position(|c| c == item) {
            Some(i) if picked[i] => {
                return Err(Refused::new(
                    name,
                    format!("`{}` is given twice", shown(item)),
                    format!("give each value once; {}", choose()),
                ));
            }
            Some(i) => picked[i] = true,
            None => {
                let hint = crate::diag::did_you_mean(item, choices.iter().map(String::as_str))
                    .map(|d| format!("{d} "))
                    .unwrap_or_default();
                return Err(Refused::new(
                    name,
                    format!("`{}` is not one of its choices", shown(item)),
                    format!("{hint}{}", choose()),
                ));
            }
        }
    }
    Ok(choices
        .iter()
        .zip(picked)
        .filter(|(_, p)| *p)
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(","))
}

/// A point in time read from RFC 3339: seconds since the Unix epoch (UTC) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Datetime {
    secs: i64,
    nanos: u32,
}

/// Why a text is not an RFC 3339 date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDatetime {
    /// `2026-11-20`: a day, but which moment of it, in which zone?
    DateOnly,
    /// `2026-11-20T14:00`: a time, but in which zone?
    NoZone,
    /// The fields read, but one is out of range (month 13, 31 April, 25:00).
    OutOfRange,
    /// Not the form at all.
    Form,
}

impl NotDatetime {
    fn what(self) -> &'static str {
        match self {
            NotDatetime::DateOnly => "is a date without a time",
            NotDatetime::NoZone => "has no time zone",
            NotDatetime::OutOfRange => "is not a real date and time",
            NotDatetime::Form => "is not an RFC 3339 date and time",
        }
    }

    fn help(self) -> String {
        match self {
            NotDatetime::DateOnly => {
                "add the time and its zone, e.g. 2026-11-20T00:00Z for the start of the day in UTC"
                    .into()
            }
            NotDatetime::NoZone => {
                "add `Z` for UTC or the offset from UTC, e.g. 2026-11-20T14:00Z or \
                 2026-11-20T15:00+01:00"
                    .into()
            }
            NotDatetime::OutOfRange | NotDatetime::Form => {
                "write the date, the time and its zone, e.g. 2026-11-20T14:00:00Z (UTC) or \
                 2026-11-20T15:00+01:00; seconds may be left out"
                    .into()
            }
        }
    }
}

impl Datetime {
    /// RFC 3339 (`2026-11-20T14:00:00Z`, `2026-11-20T15:00:00.5+01:00`), with two liberties:
    /// the seconds may be left out (`2026-11-20T14:00Z`, as people write it), and `t`/`z` or a
    /// space between date and time are read as RFC 3339 allows. A date alone, or a time
    /// without a zone, is refused: it does not say which moment it means.
    pub fn parse(text: &str) -> Result<Datetime, NotDatetime> {
        let b = text.as_bytes();
        let mut p = Cursor { b, i: 0 };
        let year = p.digits(4).ok_or(NotDatetime::Form)?;
        p.byte(b'-').ok_or(NotDatetime::Form)?;
        let month = p.digits(2).ok_or(NotDatetime::Form)?;
        p.byte(b'-').ok_or(NotDatetime::Form)?;
        let day = p.digits(2).ok_or(NotDatetime::Form)?;
        if p.done() {
            return Err(if valid_date(year, month, day) {
                NotDatetime::DateOnly
            } else {
                NotDatetime::OutOfRange
            });
        }
        if !matches!(p.next(), Some(b'T' | b't' | b' ')) {
            return Err(NotDatetime::Form);
        }
        let hour = p.digits(2).ok_or(NotDatetime::Form)?;
        p.byte(b':').ok_or(NotDatetime::Form)?;
        let minute = p.digits(2).ok_or(NotDatetime::Form)?;
        let (mut second, mut nanos) = (0, 0u32);
        if p.peek() == Some(b':') {
            p.i += 1;
            second = p.digits(2).ok_or(NotDatetime::Form)?;
            if p.peek() == Some(b'.') {
                p.i += 1;
                let start = p.i;
                while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    p.i += 1;
                }
                let frac = &text[start..p.i];
                if frac.is_empty() || frac.len() > 9 {
                    return Err(NotDatetime::Form);
                }
                nanos = format!("{frac:0<9}")
                    .parse()
                    .map_err(|_| NotDatetime::Form)?;
            }
        }
        let offset_minutes: i64 = match p.next() {
            None => return Err(NotDatetime::NoZone),
            Some(b'Z' | b'z') => 0,
            Some(sign @ (b'+' | b'-')) => {
                let h = p.digits(2).ok_or(NotDatetime::Form)?;
                p.byte(b':').ok_or(NotDatetime::Form)?;
                let m = p.digits(2).ok_or(NotDatetime::Form)?;
                if h > 23 || m > 59 {
                    return Err(NotDatetime::OutOfRange);
                }
                let o = i64::from(h * 60 + m);
                if sign == b'-' { -o } else { o }
            }
            Some(_) => return Err(NotDatetime::Form),
        };
        if !p.done() {
            return Err(NotDatetime::Form);
        }
        // A leap second (`:60`) is refused: no clock here counts one.
        if !valid_date(year, month, day) || hour > 23 || minute > 59 || second > 59 {
            return Err(NotDatetime::OutOfRange);
        }
        let days = days_from_civil(i64::from(year), month, day);
        let secs =
            days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
        let t = Datetime { secs, nanos };
        // An offset may move a time of year 0 or 9999 out of the four-digit years.
        let (y, ..) = t.civil();
        if !(0..=9999).contains(&y) {
            return Err(NotDatetime::OutOfRange);
        }
        Ok(t)
    }

    /// A system time (before 1970 counts as 1970: no clock here is set so).
    pub fn from_system(t: SystemTime) -> Datetime {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Datetime {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }

    /// As a system time (before 1970 counts as 1970).
    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::new(u64::try_from(self.secs).unwrap_or(0), self.nanos)
    }

    /// Later than `now`.
    pub fn after(self, now: SystemTime) -> bool {
        self > Datetime::from_system(now)
    }

    /// `2026-11-20T14:00:00Z`, the fraction of a second left out.
    pub fn to_rfc3339_seconds(self) -> String {
        Datetime { nanos: 0, ..self }.to_rfc3339()
    }

    /// `2026-11-20T14:00:00Z`; a fraction of a second only when there is one.
    pub fn to_rfc3339(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if self.nanos > 0 {
            let frac = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    fn civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.secs.div_euclid(86_400);
        let rest = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        // `rest` is below 86,400: the casts cannot truncate.
        let rest = rest as u32;
        (y, m, d, rest / 3600, rest / 60 % 60, rest % 60)
    }
}

struct Cursor<'b> {
    b: &'b [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next() == Some(want)).then_some(())
    }
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn valid_date(y: u32, m: u32, d: u32) -> bool {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(kind: InputType) -> InputSpec {
        InputSpec {
            description: "d".into(),
            kind,
            choices: None,
            multiple: false,
            not_future: false,
            default: None,
            secret: false,
        }
    }

    fn secrets() -> InputSpec {
        InputSpec {
            choices: Some(vec!["db".into(), "hook".into(), "runner".into()]),
            multiple: true,
            ..spec(InputType::String)
        }
    }

    /// 2026-12-01T00:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    fn norm(spec: &InputSpec, v: &str) -> Result<String, Refused> {
        normalize("x", spec, v, now())
    }

    #[test]
    fn datetimes_read_as_rfc_3339_in_utc() {
        let dt = spec(InputType::Datetime);
        for (given, normal) in [
            ("2026-11-20T14:00:00Z", "2026-11-20T14:00:00Z"),
            ("2026-11-20T14:00Z", "2026-11-20T14:00:00Z"),
            ("2026-11-20t14:00z", "2026-11-20T14:00:00Z"),
            ("2026-11-20 14:00:00Z", "2026-11-20T14:00:00Z"),
            ("2026-11-20T15:30:00+01:30", "2026-11-20T14:00:00Z"),
            ("2026-11-20T09:00-05:00", "2026-11-20T14:00:00Z"),
            ("2026-11-20T14:00:00.250Z", "2026-11-20T14:00:00.25Z"),
            ("2026-11-20T14:00:00.000Z", "2026-11-20T14:00:00Z"),
            ("2026-01-01T00:30+01:00", "2025-12-31T23:30:00Z"),
            ("2024-02-29T12:00Z", "2024-02-29T12:00:00Z"),
            ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
            ("0000-03-01T00:00Z", "0000-03-01T00:00:00Z"),
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(norm(&dt, given).as_deref(), Ok(normal), "{given}");
        }
        for (given, why) in [
            ("2026-11-20", NotDatetime::DateOnly),
            ("2026-11-20T14:00", NotDatetime::NoZone),
            ("2026-11-20T14:00:00", NotDatetime::NoZone),
            ("2026-13-01T00:00Z", NotDatetime::OutOfRange),
            ("2026-02-29T00:00Z", NotDatetime::OutOfRange),
            ("2026-04-31T00:00Z", NotDatetime::OutOfRange),
            ("2026-11-20T24:00Z", NotDatetime::OutOfRange),
            ("2026-11-20T23:60Z", NotDatetime::OutOfRange),
            ("2026-11-20T23:59:60Z", NotDatetime::OutOfRange),
            ("2026-11-20T14:00+24:00", NotDatetime::OutOfRange),
            ("9999-12-31T23:59-01:00", NotDatetime::OutOfRange),
            ("0000-01-01T00:00+01:00", NotDatetime::OutOfRange),
            ("2026-02-30", NotDatetime::OutOfRange),
            ("yesterday", NotDatetime::Form),
            ("", NotDatetime::Form),
            ("2026-11-20T14Z", NotDatetime::Form),
            ("2026-11-20T14:00:00.Z", NotDatetime::Form),
            ("2026-11-20T14:00:00.1234567891Z", NotDatetime::Form),
            ("2026-11-20T14:00+0100", NotDatetime::Form),
            ("2026-11-20T14:00Z ", NotDatetime::Form),
            (" 2026-11-20T14:00Z", NotDatetime::Form),
            ("2026-11-20T14:00ZZ", NotDatetime::Form),
            ("٢٠٢٦-11-20T14:00Z", NotDatetime::Form),
            ("2026-11-20T14:0é", NotDatetime::Form),
            ("+2026-11-20T14:00Z", NotDatetime::Form),
        ] {
            assert_eq!(Datetime::parse(given), Err(why), "{given}");
            assert!(norm(&dt, given).is_err());
        }
    }

    #[test]
    fn the_day_count_is_right_everywhere() {
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn not_future_refuses_a_later_time_and_says_now() {
        let dt = InputSpec {
            not_future: true,
            ..spec(InputType::Datetime)
        };
        assert_eq!(
            norm(&dt, "2026-12-01T00:00Z").as_deref(),
            Ok("2026-12-01T00:00:00Z")
        );
        // One hour ahead, written with an offset that makes it the same instant as now.
        assert!(norm(&dt, "2026-12-01T01:00+01:00").is_ok());
        let r = norm(&dt, "2026-12-01T00:00:01Z").unwrap_err();
        assert_eq!(
            r.message,
            "input `x`: `2026-12-01T00:00:01Z` is in the future"
        );
        assert!(r.help.contains("now, 2026-12-01T00:00:00Z;"), "{}", r.help);
        assert!(norm(&dt, "2099-01-01T00:00Z").is_err());
        // Without `not_future`, the future is fine.
        assert!(norm(&spec(InputType::Datetime), "2099-01-01T00:00Z").is_ok());
    }

    #[test]
    fn integers_and_booleans() {
        let int = spec(InputType::Integer);
        assert_eq!(norm(&int, "3").as_deref(), Ok("3"));
        assert_eq!(norm(&int, "-12").as_deref(), Ok("-12"));
        assert_eq!(norm(&int, "007").as_deref(), Ok("7"));
        for bad in ["", "ten", "1.0", "+3", " 3", "3 ", "1e3", "0x10"] {
            let r = norm(&int, bad).unwrap_err();
            assert!(r.message.ends_with("is not an integer"), "{bad}: {r:?}");
        }
        for big in ["99999999999999999999", "-9223372036854775809"] {
            let r = norm(&int, big).unwrap_err();
            assert!(r.message.ends_with("is out of range"), "{big}: {r:?}");
            assert!(r.help.contains("9223372036854775807"), "{big}: {r:?}");
        }
        assert_eq!(template_value(&int, "-12"), serde_json::json!(-12));
        let b = spec(InputType::Boolean);
        assert_eq!(norm(&b, "true").as_deref(), Ok("true"));
        assert_eq!(norm(&b, "False").as_deref(), Ok("false"));
        for bad in ["yes", "1", "", "truee"] {
            assert_eq!(
                norm(&b, bad).unwrap_err().help,
                "give `true` or `false`",
                "{bad}"
            );
        }
        assert_eq!(template_value(&b, "false"), serde_json::json!(false));
        assert_eq!(
            template_value(&spec(InputType::Datetime), "2026-11-20T14:00:00Z"),
            serde_json::json!("2026-11-20T14:00:00Z")
        );
    }

    #[test]
    fn several_choices_in_the_order_of_the_choices() {
        let s = secrets();
        assert_eq!(norm(&s, "runner,db").as_deref(), Ok("db,runner"));
        assert_eq!(norm(&s, " hook , db ").as_deref(), Ok("db,hook"));
        assert_eq!(norm(&s, "all").as_deref(), Ok("db,hook,runner"));
        // As a template renders a list.
        assert_eq!(norm(&s, "['runner', 'db']").as_deref(), Ok("db,runner"));
        assert_eq!(norm(&s, r#"["hook"]"#).as_deref(), Ok("hook"));
        assert!(norm(&s, "['runner', 'runner']").is_err());
        assert!(norm(&s, "[]").is_err());
        assert!(norm(&s, "['runner', db]").is_err());
        assert_eq!(
            template_value(&s, "db,runner"),
            serde_json::json!(["db", "runner"])
        );
        let r = norm(&s, "db,runer").unwrap_err();
        assert_eq!(r.message, "input `x`: `runer` is not one of its choices");
        assert_eq!(
            r.help,
            "did you mean `runner`? choose from: db, hook, runner; or all for every one"
        );
        let r = norm(&s, "db,hook,db").unwrap_err();
        assert_eq!(r.message, "input `x`: `db` is given twice");
        assert!(norm(&s, " ").unwrap_err().message.contains("no value"));
        for bad in ["db,", ",db", "db,,hook"] {
            assert!(
                norm(&s, bad).unwrap_err().message.contains("empty item"),
                "{bad}"
            );
        }
        assert!(
            norm(&s, "all,db")
                .unwrap_err()
                .message
                .contains("with other values")
        );
    }

    #[test]
    fn a_refused_value_is_shown_visibly_and_cut() {
        let int = spec(InputType::Integer);
        let r = norm(&int, "1\u{202e}2").unwrap_err();
        assert!(!r.message.contains('\u{202e}'), "{}", r.message);
        let long = "9".repeat(500);
        let r = norm(&int, &long).unwrap_err();
        assert!(r.message.len() < 200, "{}", r.message);
    }

    #[test]
    fn secret_inputs_stay_text() {
        let s = InputSpec {
            secret: true,
            ..spec(InputType::String)
        };
        assert_eq!(norm(&s, "a,b").as_deref(), Ok("a,b"));
        assert_eq!(template_value(&s, "12"), serde_json::json!("12"));
    }
}
