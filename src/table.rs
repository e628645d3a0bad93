//! The one way a table is laid out for a person (`list`, `runs`, `preflight`): columns two
//! spaces apart, no borders, every line trimmed. Given a width (the terminal's), the columns
//! are fitted to it and a cell too long wraps inside its column at a space (comfy-table), so
//! no line is wider than the terminal and nothing wraps mid-word; without one (a pipe, a file)
//! every row stays one line, for `grep` and `cut`.

use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};

/// `header` and `rows` (each as long as `header`; text already made visible) as lines.
/// `whole`: the columns never wrapped (names and ids a person copies, short words); the others
/// share the room left. `width`: the columns of the terminal the table goes to, `None` when it
/// goes elsewhere.
pub fn render(
    header: &[&str],
    whole: &[&str],
    rows: &[Vec<String>],
    width: Option<usize>,
) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    match width {
        Some(w) => {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
        }
        None => {
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r.clone());
    }
    let last = header.len().saturating_sub(1);
    for (i, c) in t.column_iter_mut().enumerate() {
        c.set_padding((0, if i == last { 0 } else { 2 }));
        if whole.contains(&header[i]) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "compromise-response".into(),
                "-".into(),
                "Respond to a suspected secret compromise: rotate what leaked and collect the evidence".into(),
            ],
            vec!["db".into(), "db-password".into(), "Rotate it".into()],
        ]
    }

    #[test]
    fn without_a_width_every_row_is_one_line_two_spaces_apart() {
        assert_eq!(
            render(&["NAME", "ROTATION", "SUMMARY"], &["NAME"], &rows(), None),
            "NAME                 ROTATION     SUMMARY\n\
             compromise-response  -            Respond to a suspected secret compromise: rotate what leaked and collect the evidence\n\
             db                   db-password  Rotate it\n"
        );
    }

    #[test]
    fn with_a_width_no_line_is_wider_and_words_stay_whole() {
        for width in [60, 80, 120] {
            let text = render(
                &["NAME", "ROTATION", "SUMMARY"],
                &["NAME"],
                &rows(),
                Some(width),
            );
            assert!(
                text.lines().all(|l| l.chars().count() <= width),
                "{width}:\n{text}"
            );
            for word in [
                "compromise-response",
                "suspected",
                "compromise:",
                "evidence",
            ] {
                assert!(text.contains(word), "{word} cut at {width}:\n{text}");
            }
        }
    }
}
