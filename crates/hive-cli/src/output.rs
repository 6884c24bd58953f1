//! What the account commands print, the same whichever instance they worked on: aligned
//! tables for people, the API's JSON for scripts (`--json`), times as RFC 3339 in UTC, and
//! progress on a terminal for long work.

use crate::remote::{emit, shown};
use serde_json::Value;
use std::time::Duration;

/// One column of a table: its heading and the field of the API's JSON it shows.
pub(crate) struct Column {
    pub(crate) heading: &'static str,
    pub(crate) field: &'static str,
}

pub(crate) const fn column(heading: &'static str, field: &'static str) -> Column {
    Column { heading, field }
}

/// Prints `items` (objects of the API's JSON) as a table of `columns`, one row each.
pub(crate) fn table(items: &[Value], columns: &[Column]) -> Result<(), String> {
    let headings: Vec<&str> = columns.iter().map(|column| column.heading).collect();
    let rows = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|column| cell(item.get(column.field)))
                .collect()
        })
        .collect();
    grid(&headings, rows)
}

/// Prints rows of cells under `headings`, every column as wide as its widest cell: the one
/// table layout of every list the command line prints.
pub(crate) fn grid(headings: &[&str], rows: Vec<Vec<String>>) -> Result<(), String> {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(headings.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    // No border, no margin: two spaces between columns.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.to_string().lines() {
        // The preset pads every cell, the last one too; a line ends where its text does.
        emit(line.trim_end())?;
    }
    Ok(())
}

/// One field as a cell: text with control characters escaped, times in UTC, `-` for none.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => utc_time(text).unwrap_or_else(|| shown(text).into_owned()),
        Some(Value::Bool(yes)) => if *yes { "yes" } else { "no" }.to_owned(),
        Some(Value::Array(values)) => {
            let cells: Vec<String> = values.iter().map(|value| cell(Some(value))).collect();
            if cells.is_empty() {
                "-".to_owned()
            } else {
                cells.join(",")
            }
        }
        Some(other) => shown(&other.to_string()).into_owned(),
    }
}

/// An RFC 3339 time in any offset, as [`time`] prints it (`None`: the text is no such time).
fn utc_time(text: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339).ok().map(time)
}

/// A time as the tables print it: RFC 3339 in UTC, to the second (the column lines up).
pub(crate) fn time(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    crate::remote::rfc3339(at.replace_nanosecond(0).unwrap_or(at))
}

/// Prints the API's JSON as it is, on one line (one document: a script parses it whole).
pub(crate) fn json(value: &Value) -> Result<(), String> {
    emit(&value.to_string())
}

/// Any of the API's views as the JSON it is sent as.
pub(crate) fn to_json<T: serde::Serialize>(view: &T) -> Result<Value, String> {
    serde_json::to_value(view).map_err(|e| format!("cannot show the answer as JSON: {e}"))
}

/// A page read on the data directory as the API sends it: each item through the API's `view`.
pub(crate) fn page_json<T, V: serde::Serialize>(
    items: &[T],
    next_cursor: Option<String>,
    view: impl Fn(&T) -> V,
) -> Result<Value, String> {
    to_json(&hive_proto::auth::PageResponse {
        items: items.iter().map(view).collect(),
        next_cursor,
    })
}

/// Prints a list: `--json` the API's page as it is, else its items as a table (and, when
/// there are more, how to get them).
pub(crate) fn list(page: &Value, columns: &[Column], as_json: bool) -> Result<(), String> {
    if as_json {
        return json(page);
    }
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    table(items, columns)?;
    if let Some(cursor) = page.get("nextCursor").and_then(Value::as_str) {
        eprintln!("more: add --cursor {}", shown(cursor));
    }
    Ok(())
}

/// A spinner with `message` on standard error while long work runs: drawn on a terminal
/// only (elsewhere nothing is written), cleared when it ends.
pub(crate) fn progress(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_shown_in_utc_and_other_text_as_it_is() {
        assert_eq!(
            cell(Some(&json!("2026-12-07T14:00:00.123456+02:00"))),
            "2026-12-07T12:00:00Z"
        );
        assert_eq!(cell(Some(&json!("alice@example.com"))), "alice@example.com");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!(["read", "write"]))), "read,write");
        assert_eq!(cell(Some(&json!("\u{1b}[31m"))), "\\x1b[31m");
    }
}
