//! Templates: JSON values whose strings hold `{{ path }}` placeholders.
//!
//! A template is any JSON value. Inside its strings (never its object keys), `{{ path }}`
//! names a value of the run's scope:
//!
//! - a string that is exactly one placeholder (spaces around it allowed) renders to the value
//!   itself, of any JSON type: `"{{ nodes.ask.output }}"` may give an object;
//! - any other string interpolates: text stays, each placeholder becomes the value as text
//!   (a string as it is, anything else as compact JSON).
//!
//! A path is a root and then `.field` and `[n]` steps: `input.user.name`,
//! `nodes.ask.output.items[0].id`, `item`, `item.x`, `index`, `run.id`, `secrets.API_KEY`. The
//! roots are `input`, `nodes`, `item`, `index`, `run` and `secrets`; a field is
//! `[A-Za-z0-9_-]+`, an index a decimal number. `nodes` is followed by a node id,
//! `secrets` by exactly one name. There are no filters and nothing is evaluated.
//!
//! Escaping: a backslash right before `{{` (`\{{`) gives a literal `{{` and starts no
//! placeholder; every other backslash is literal text. `}}` outside a placeholder is literal.
//!
//! Rendering is given the scope (`{"input":…, "nodes": {"<id>": {"output": …}}, "item":…,
//! "index":…, "run": {…}}`) and, apart, the secrets: `secrets.*` is read only from the
//! secrets argument, never from the scope. A path that names nothing is an error naming the
//! path. It gives the value and its journal copy, where each secret is `[secret NAME]`.
//! A render that would produce more than [`MAX_RENDERED_BYTES`] (an estimate of its JSON
//! size) is refused, so a small template cannot multiply a large scope without bound.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The secrets a render may use, by name.
pub type SecretValues = BTreeMap<String, zeroize::Zeroizing<String>>;

/// The roots a path may start with.
pub const ROOTS: [&str; 6] = ["input", "nodes", "item", "index", "run", "secrets"];

/// Placeholders in one template, at most.
pub const MAX_PLACEHOLDERS: usize = 1_000;

/// Steps in one path, at most.
pub const MAX_PATH_SEGMENTS: usize = 32;

/// The size a render may reach (the JSON size of its value, estimated), at most: 8 MiB.
pub const MAX_RENDERED_BYTES: usize = 8 * 1024 * 1024;

/// Nesting of a template's own JSON, at most.
const MAX_DEPTH: usize = 64;

/// A problem with a template or its render; the message names the path when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

/// A placeholder's path: its root and its steps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TemplatePath {
    pub root: String,
    pub segments: Vec<PathSegment>,
}

impl TemplatePath {
    /// The node a `nodes.X…` path names.
    pub fn node_id(&self) -> Option<&str> {
        match (self.root.as_str(), self.segments.first()) {
            ("nodes", Some(PathSegment::Field(id))) => Some(id),
            _ => None,
        }
    }

    /// The secret a `secrets.NAME` path names.
    pub fn secret_name(&self) -> Option<&str> {
        match (self.root.as_str(), self.segments.as_slice()) {
            ("secrets", [PathSegment::Field(name)]) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for TemplatePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for segment in &self.segments {
            match segment {
                PathSegment::Field(name) => write!(f, ".{name}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A string's pieces.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Placeholder(TemplatePath),
}

/// A template, compiled.
#[derive(Debug, Clone, PartialEq)]
enum Compiled {
    /// No placeholder inside: rendered as it is.
    Literal(Value),
    /// A string that is one placeholder: the value itself.
    Whole(TemplatePath),
    /// A string of text and placeholders.
    Text(Vec<Part>),
    Array(Vec<Compiled>),
    Object(Vec<(String, Compiled)>),
}

/// A JSON value with placeholders, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: Value,
    compiled: Compiled,
}

/// A render: the value to use, and the copy to journal (each secret replaced by
/// `[secret NAME]`). Its `Debug` shows the journal copy only.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    pub value: Value,
    pub journal: Value,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses the placeholders of `value`.
    pub fn new(value: Value) -> Result<Self, TemplateError> {
        let mut count = 0;
        let compiled = compile(&value, 0, &mut count)?;
        Ok(Self {
            source: value,
            compiled,
        })
    }

    /// The JSON value as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Renders with the scope and the secrets.
    pub fn render(&self, scope: &Value, secrets: &SecretValues) -> Result<Rendered, TemplateError> {
        let mut budget = MAX_RENDERED_BYTES;
        let (value, journal) = render(&self.compiled, scope, secrets, &mut budget)?;
        Ok(Rendered { value, journal })
    }

    /// Every placeholder's path, in the order written.
    pub fn paths(&self) -> Vec<TemplatePath> {
        let mut out = Vec::new();
        collect_paths(&self.compiled, &mut out);
        out
    }

    /// The names of the secrets it uses.
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.paths()
            .iter()
            .filter_map(|path| path.secret_name().map(str::to_owned))
            .collect()
    }

    /// True when it has no placeholder.
    pub fn is_literal(&self) -> bool {
        matches!(self.compiled, Compiled::Literal(_))
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Template::new(value).map_err(serde::de::Error::custom)
    }
}

fn compile(value: &Value, depth: usize, count: &mut usize) -> Result<Compiled, TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError::new(format!(
            "template nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let compiled = match value {
        Value::String(text) => compile_string(text, count)?,
        Value::Array(items) => {
            let parts = items
                .iter()
                .map(|item| compile(item, depth + 1, count))
                .collect::<Result<Vec<_>, _>>()?;
            if parts
                .iter()
                .all(|part| matches!(part, Compiled::Literal(_)))
            {
                Compiled::Literal(value.clone())
            } else {
                Compiled::Array(parts)
            }
        }
        Value::Object(map) => {
            let parts = map
                .iter()
                .map(|(key, item)| Ok((key.clone(), compile(item, depth + 1, count)?)))
                .collect::<Result<Vec<_>, TemplateError>>()?;
            if parts
                .iter()
                .all(|(_, part)| matches!(part, Compiled::Literal(_)))
            {
                Compiled::Literal(value.clone())
            } else {
                Compiled::Object(parts)
            }
        }
        other => Compiled::Literal(other.clone()),
    };
    Ok(compiled)
}

fn compile_string(text: &str, count: &mut usize) -> Result<Compiled, TemplateError> {
    let mut parts: Vec<Part> = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if rest[..open].ends_with('\\') {
            // `\{{`: a literal `{{`.
            literal.push_str(&rest[..open - 1]);
            literal.push_str("{{");
            rest = &rest[open + 2..];
            continue;
        }
        literal.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::new(format!(
                "unclosed placeholder `{{{{` in {:?} (write `\\{{{{` for a literal `{{{{`)",
                shorten(text)
            )));
        };
        let path = parse_path(after[..close].trim())?;
        *count += 1;
        if *count > MAX_PLACEHOLDERS {
            return Err(TemplateError::new(format!(
                "more than {MAX_PLACEHOLDERS} placeholders"
            )));
        }
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(Part::Placeholder(path));
        rest = &after[close + 2..];
    }
    literal.push_str(rest);
    if parts.is_empty() {
        return Ok(Compiled::Literal(Value::String(literal)));
    }
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    // Exactly one placeholder, with nothing but spaces around it: the value itself.
    let placeholders = parts
        .iter()
        .filter(|part| matches!(part, Part::Placeholder(_)))
        .count();
    let only_spaces = parts.iter().all(|part| match part {
        Part::Text(text) => text.trim().is_empty(),
        Part::Placeholder(_) => true,
    });
    if placeholders == 1
        && only_spaces
        && let Some(Part::Placeholder(path)) = parts
            .iter()
            .find(|part| matches!(part, Part::Placeholder(_)))
    {
        return Ok(Compiled::Whole(path.clone()));
    }
    Ok(Compiled::Text(parts))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Parses `root(.field|[n])*`.
pub fn parse_path(text: &str) -> Result<TemplatePath, TemplateError> {
    let bad = |why: &str| {
        TemplateError::new(format!(
            "bad placeholder `{{{{ {} }}}}`: {why}",
            shorten(text)
        ))
    };
    if text.is_empty() {
        return Err(bad("empty path"));
    }
    let root_end = text.find(['.', '[']).unwrap_or(text.len());
    let root = &text[..root_end];
    if !ROOTS.contains(&root) {
        return Err(bad(&format!(
            "a path starts with one of {}",
            ROOTS.join(", ")
        )));
    }
    let mut segments = Vec::new();
    let mut rest = &text[root_end..];
    while !rest.is_empty() {
        if segments.len() >= MAX_PATH_SEGMENTS {
            return Err(bad(&format!("more than {MAX_PATH_SEGMENTS} steps")));
        }
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(|c| !is_field_char(c)).unwrap_or(after.len());
            if end == 0 {
                return Err(bad("a `.` is followed by a field name ([A-Za-z0-9_-])"));
            }
            segments.push(PathSegment::Field(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(bad("unclosed `[`"));
            };
            let digits = &after[..end];
            if digits.is_empty() || digits.len() > 9 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return Err(bad("an index is a number between `[` and `]`"));
            }
            let index = digits
                .parse::<usize>()
                .map_err(|_| bad("an index is a number between `[` and `]`"))?;
            segments.push(PathSegment::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(bad("expected `.field` or `[index]`"));
        }
    }
    let path = TemplatePath {
        root: root.to_owned(),
        segments,
    };
    match root {
        "secrets" if path.secret_name().is_none() => Err(bad(
            "a secret is named as `secrets.NAME`, with nothing after it",
        )),
        "nodes" if path.node_id().is_none() => Err(bad("`nodes` is followed by a node id")),
        "index" if !path.segments.is_empty() => Err(bad("`index` is a number, it has no fields")),
        _ => Ok(path),
    }
}

fn collect_paths(compiled: &Compiled, out: &mut Vec<TemplatePath>) {
    match compiled {
        Compiled::Literal(_) => {}
        Compiled::Whole(path) => out.push(path.clone()),
        Compiled::Text(parts) => {
            for part in parts {
                if let Part::Placeholder(path) = part {
                    out.push(path.clone());
                }
            }
        }
        Compiled::Array(items) => items.iter().for_each(|item| collect_paths(item, out)),
        Compiled::Object(entries) => entries
            .iter()
            .for_each(|(_, item)| collect_paths(item, out)),
    }
}

/// Charges `cost` bytes to the render's budget.
fn charge(budget: &mut usize, cost: usize) -> Result<(), TemplateError> {
    if cost > *budget {
        return Err(TemplateError::new(format!(
            "the rendered value would exceed {MAX_RENDERED_BYTES} bytes"
        )));
    }
    *budget -= cost;
    Ok(())
}

/// The JSON size of `value`, estimated, stopping once it passes `limit`.
fn estimated_size(value: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        total = total.saturating_add(match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 20,
            Value::String(text) => text.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                items.len() + 2
            }
            Value::Object(map) => {
                for (key, item) in map {
                    total = total.saturating_add(key.len() + 4);
                    stack.push(item);
                }
                2
            }
        });
        if total > limit {
            break;
        }
    }
    total
}

/// A placeholder's value and its journal copy.
fn resolve(
    path: &TemplatePath,
    scope: &Value,
    secrets: &SecretValues,
) -> Result<(Value, Value), TemplateError> {
    if let Some(name) = path.secret_name() {
        let secret = secrets
            .get(name)
            .ok_or_else(|| TemplateError::new(format!("`{path}`: secret `{name}` is not set")))?;
        return Ok((
            Value::String(secret.as_str().to_owned()),
            Value::String(format!("[secret {name}]")),
        ));
    }
    let mut current = scope
        .as_object()
        .and_then(|scope| scope.get(&path.root))
        .ok_or_else(|| {
            TemplateError::new(format!("`{path}`: `{}` is not available here", path.root))
        })?;
    let mut walked = TemplatePath {
        root: path.root.clone(),
        segments: Vec::new(),
    };
    for segment in &path.segments {
        let next = match (segment, current) {
            (PathSegment::Field(name), Value::Object(map)) => map.get(name),
            (PathSegment::Index(index), Value::Array(items)) => items.get(*index),
            _ => None,
        };
        current = next.ok_or_else(|| {
            let why = match (segment, current) {
                (PathSegment::Field(name), Value::Object(_)) => {
                    format!("`{walked}` has no field `{name}`")
                }
                (PathSegment::Index(index), Value::Array(items)) => {
                    format!("`{walked}` has {} items, no index {index}", items.len())
                }
                (PathSegment::Field(_), other) => {
                    format!("`{walked}` is {}, not an object", kind(other))
                }
                (PathSegment::Index(_), other) => {
                    format!("`{walked}` is {}, not an array", kind(other))
                }
            };
            TemplateError::new(format!("`{path}` not found: {why}"))
        })?;
        walked.segments.push(segment.clone());
    }
    Ok((current.clone(), current.clone()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as interpolated text: a string as it is, anything else as compact JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn render(
    compiled: &Compiled,
    scope: &Value,
    secrets: &SecretValues,
    budget: &mut usize,
) -> Result<(Value, Value), TemplateError> {
    Ok(match compiled {
        Compiled::Literal(value) => {
            charge(budget, estimated_size(value, *budget))?;
            (value.clone(), value.clone())
        }
        Compiled::Whole(path) => {
            let (value, journal) = resolve(path, scope, secrets)?;
            charge(budget, estimated_size(&value, *budget))?;
            (value, journal)
        }
        Compiled::Text(parts) => {
            let mut text = String::new();
            let mut journal = String::new();
            for part in parts {
                match part {
                    Part::Text(literal) => {
                        charge(budget, literal.len())?;
                        text.push_str(literal);
                        journal.push_str(literal);
                    }
                    Part::Placeholder(path) => {
                        let (value, journaled) = resolve(path, scope, secrets)?;
                        charge(budget, estimated_size(&value, *budget))?;
                        text.push_str(&as_text(&value));
                        journal.push_str(&as_text(&journaled));
                    }
                }
            }
            (Value::String(text), Value::String(journal))
        }
        Compiled::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            let mut journals = Vec::with_capacity(items.len());
            for item in items {
                let (value, journal) = render(item, scope, secrets, budget)?;
                values.push(value);
                journals.push(journal);
            }
            (Value::Array(values), Value::Array(journals))
        }
        Compiled::Object(entries) => {
            let mut values = serde_json::Map::new();
            let mut journals = serde_json::Map::new();
            for (key, item) in entries {
                charge(budget, key.len())?;
                let (value, journal) = render(item, scope, secrets, budget)?;
                values.insert(key.clone(), value);
                journals.insert(key.clone(), journal);
            }
            (Value::Object(values), Value::Object(journals))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn scope() -> Value {
        json!({
            "input": {"user": {"name": "Ada", "age": 36}, "tags": ["a", "b"]},
            "nodes": {"ask": {"output": {"items": [{"id": 7}, {"id": 8}], "text": "hi"}}},
            "run": {"id": "r1", "workflowId": "w1"},
        })
    }

    fn secrets() -> SecretValues {
        let mut secrets = SecretValues::new();
        secrets.insert("API_KEY".into(), zeroize::Zeroizing::new("s3cr3t".into()));
        secrets
    }

    fn render_ok(template: Value) -> Rendered {
        Template::new(template)
            .and_then(|t| t.render(&scope(), &secrets()))
            .unwrap()
    }

    #[test]
    fn a_lone_placeholder_renders_to_the_value_itself() {
        assert_eq!(
            render_ok(json!("{{ input.user }}")).value,
            json!({"name": "Ada", "age": 36})
        );
        assert_eq!(render_ok(json!("{{input.user.age}}")).value, json!(36));
        assert_eq!(
            render_ok(json!("  {{ input.tags }} ")).value,
            json!(["a", "b"])
        );
    }

    #[test]
    fn text_interpolates_strings_as_is_and_other_values_as_json() {
        assert_eq!(
            render_ok(json!(
                "Hello {{ input.user.name }}, {{ input.user.age }} {{ input.tags }}"
            ))
            .value,
            json!("Hello Ada, 36 [\"a\",\"b\"]")
        );
    }

    #[test]
    fn indexes_and_nested_values_render() {
        let rendered = render_ok(json!({
            "first": "{{ nodes.ask.output.items[1].id }}",
            "list": ["x", "{{ run.id }}", 3],
            "lit": {"k": true}
        }));
        assert_eq!(
            rendered.value,
            json!({"first": 8, "list": ["x", "r1", 3], "lit": {"k": true}})
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let template = Template::new(json!("x {{ input.user.email }}")).unwrap();
        let error = template.render(&scope(), &secrets()).unwrap_err();
        assert!(error.to_string().contains("`input.user.email`"), "{error}");
        assert!(error.to_string().contains("no field `email`"), "{error}");
        let template = Template::new(json!("{{ nodes.ask.output.items[5] }}")).unwrap();
        let error = template.render(&scope(), &secrets()).unwrap_err();
        assert!(
            error.to_string().contains("nodes.ask.output.items[5]"),
            "{error}"
        );
        let template = Template::new(json!("{{ item.x }}")).unwrap();
        let error = template.render(&scope(), &secrets()).unwrap_err();
        assert!(
            error.to_string().contains("`item` is not available"),
            "{error}"
        );
    }

    #[test]
    fn secrets_render_in_the_value_and_are_masked_in_the_journal() {
        let rendered = render_ok(json!({
            "auth": "Bearer {{ secrets.API_KEY }}",
            "raw": "{{ secrets.API_KEY }}"
        }));
        assert_eq!(
            rendered.value,
            json!({"auth": "Bearer s3cr3t", "raw": "s3cr3t"})
        );
        assert_eq!(
            rendered.journal,
            json!({"auth": "Bearer [secret API_KEY]", "raw": "[secret API_KEY]"})
        );
        assert!(!format!("{rendered:?}").contains("s3cr3t"));
    }

    #[test]
    fn secrets_come_only_from_the_secrets_argument() {
        let mut scope = scope();
        scope["secrets"] = json!({"OTHER": "from-scope"});
        let template = Template::new(json!("{{ secrets.OTHER }}")).unwrap();
        let error = template.render(&scope, &secrets()).unwrap_err();
        assert!(
            error.to_string().contains("secret `OTHER` is not set"),
            "{error}"
        );
    }

    #[test]
    fn paths_and_secret_names_are_listed() {
        let template = Template::new(json!({
            "a": "{{ nodes.ask.output }} and {{ secrets.B }}",
            "b": ["{{ item.x[2] }}", "{{ index }}"]
        }))
        .unwrap();
        let paths: Vec<String> = template.paths().iter().map(ToString::to_string).collect();
        assert_eq!(
            paths,
            ["nodes.ask.output", "secrets.B", "item.x[2]", "index"]
        );
        assert_eq!(template.paths()[0].node_id(), Some("ask"));
        assert_eq!(template.secret_names(), BTreeSet::from(["B".to_owned()]));
    }

    #[test]
    fn escaped_braces_are_literal() {
        let rendered = render_ok(json!("\\{{ input.user.name }} is {{ input.user.name }}"));
        assert_eq!(rendered.value, json!("{{ input.user.name }} is Ada"));
        assert!(
            Template::new(json!("\\{{ nope"))
                .unwrap()
                .paths()
                .is_empty()
        );
        assert_eq!(render_ok(json!("a }} b")).value, json!("a }} b"));
    }

    #[test]
    fn bad_placeholders_are_refused_at_parse() {
        for bad in [
            "{{ input.x",
            "{{ }}",
            "{{ env.HOME }}",
            "{{ input..x }}",
            "{{ input[x] }}",
            "{{ secrets }}",
            "{{ secrets.A.b }}",
            "{{ nodes }}",
            "{{ index.x }}",
            "{{ input | json }}",
        ] {
            assert!(Template::new(json!(bad)).is_err(), "{bad} was accepted");
        }
        let error =
            serde_json::from_value::<Template>(json!({"x": ["{{ env.HOME }}"]})).unwrap_err();
        assert!(error.to_string().contains("env.HOME"), "{error}");
    }

    #[test]
    fn a_render_that_would_blow_up_is_refused() {
        let big = "x".repeat(1024 * 1024);
        let scope = json!({"input": {"big": big}});
        let many: Vec<Value> = (0..16).map(|_| json!("{{ input.big }}")).collect();
        let error = Template::new(Value::Array(many))
            .unwrap()
            .render(&scope, &SecretValues::new())
            .unwrap_err();
        assert!(error.to_string().contains("exceed"), "{error}");
    }

    proptest! {
        #[test]
        fn parsing_and_rendering_odd_strings_never_panics(text in "[{}\\\\ a-z.\\[\\]0-9_]{0,40}") {
            if let Ok(template) = Template::new(json!(text)) {
                let _ = template.render(&scope(), &secrets());
                let _ = template.paths();
            }
        }

        #[test]
        fn rendering_paths_of_any_shape_never_panics(
            root in prop::sample::select(ROOTS.to_vec()),
            steps in prop::collection::vec("(\\.[a-z0-9]{1,3}|\\[[0-9]{1,3}\\])", 0..5),
        ) {
            let text = format!("{{{{ {root}{} }}}} and {{{{ {root}{} }}}}", steps.concat(), steps.concat());
            if let Ok(template) = Template::new(json!(text)) {
                let _ = template.render(&scope(), &secrets());
            }
        }
    }
}
