//! Conditions: CEL expressions (the Common Expression Language, through `cel-interpreter`),
//! compiled when the workflow is saved.
//!
//! An expression sees the variables `input`, `nodes` (`nodes.<id>.output`), `item`, `index` and
//! `run` of the scope it is given, and nothing else: secrets are never bound, whatever the
//! scope holds, and a variable the scope lacks is an error when it is read.
//!
//! Bounded evaluation: CEL has no loops and no recursion; the only iteration is its macros
//! (`all`, `exists`, `exists_one`, `map`, `filter`) over lists and maps. An expression is at
//! most [`MAX_SOURCE_CHARS`] characters, its brackets nest at most [`MAX_NESTING`] deep, its
//! syntax tree is at most [`MAX_TREE_DEPTH`] deep and its macros nest at most
//! [`MAX_MACRO_NESTING`] deep, so one evaluation costs at most a polynomial of degree
//! [`MAX_MACRO_NESTING`] in the size of the scope, times the length of the expression. The
//! engine caps the scope (the outputs it keeps and passes in); that cap is what bounds the work.
//! Parsing runs on a thread of its own with a large stack (the parser is recursive);
//! evaluation runs under `catch_unwind`: a panic in the library is an error here.

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value as CelValue};
use cel_parser::ast::{EntryExpr, Expr, IdedExpr};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// An expression's length, at most, in characters.
pub const MAX_SOURCE_CHARS: usize = 2000;
/// Bracket nesting in the source, at most.
pub const MAX_NESTING: usize = 32;
/// Depth of the syntax tree, at most.
pub const MAX_TREE_DEPTH: usize = 64;
/// Macros (`map`, `filter`, `all`, `exists`, `exists_one`) inside one another, at most.
pub const MAX_MACRO_NESTING: usize = 2;
/// The variables an expression may read.
pub const VARIABLES: [&str; 5] = ["input", "nodes", "item", "index", "run"];

/// A problem compiling or evaluating an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionError(String);

impl ExpressionError {
    fn new(message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        // Library messages quote values; keep them short.
        if message.chars().count() > 300 {
            message = message.chars().take(300).collect::<String>() + "…";
        }
        Self(message)
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExpressionError {}

/// A compiled CEL expression.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<Program>,
    roots: BTreeSet<String>,
    node_ids: BTreeSet<String>,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Expression {
    /// Compiles `source`; the error names the problem.
    pub fn parse(source: &str) -> Result<Self, ExpressionError> {
        if source.trim().is_empty() {
            return Err(ExpressionError::new("the expression is empty"));
        }
        if source.chars().count() > MAX_SOURCE_CHARS {
            return Err(ExpressionError::new(format!(
                "the expression is longer than {MAX_SOURCE_CHARS} characters"
            )));
        }
        check_nesting(source)?;
        let (program, walk) = compile_on_a_large_stack(source.to_owned())?;
        Ok(Self {
            source: source.to_owned(),
            program: Arc::new(program),
            roots: walk.roots,
            node_ids: walk.node_ids,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables it reads (`input`, `nodes`, …; any other name it uses is listed too, so a
    /// validator can refuse it).
    pub fn roots(&self) -> BTreeSet<String> {
        self.roots.clone()
    }

    /// The node ids it reads as `nodes.X` or `nodes["X"]`.
    pub fn node_ids(&self) -> BTreeSet<String> {
        self.node_ids.clone()
    }

    /// Evaluates over `scope`'s `input`, `nodes`, `item`, `index` and `run`.
    pub fn evaluate(&self, scope: &Value) -> Result<Value, ExpressionError> {
        let mut context = Context::default();
        if let Some(scope) = scope.as_object() {
            for name in VARIABLES {
                if let Some(value) = scope.get(name) {
                    context.add_variable_from_value(name, to_cel(value));
                }
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| self.program.execute(&context)))
            .map_err(|_| ExpressionError::new("the expression failed (arithmetic overflow?)"))?
            .map_err(|error| ExpressionError::new(format!("`{}`: {error}", self.source)))?;
        from_cel(&result)
    }

    /// Evaluates to a boolean; any other type is an error.
    pub fn evaluate_bool(&self, scope: &Value) -> Result<bool, ExpressionError> {
        match self.evaluate(scope)? {
            Value::Bool(value) => Ok(value),
            other => Err(ExpressionError::new(format!(
                "`{}` gave {}, not a boolean",
                self.source,
                type_name(&other)
            ))),
        }
    }

    /// Evaluates to a switch case: a string, or a number as text.
    pub fn evaluate_case(&self, scope: &Value) -> Result<String, ExpressionError> {
        match self.evaluate(scope)? {
            Value::String(text) => Ok(text),
            Value::Number(number) => Ok(number.to_string()),
            other => Err(ExpressionError::new(format!(
                "`{}` gave {}, not a string or a number",
                self.source,
                type_name(&other)
            ))),
        }
    }
}

impl Serialize for Expression {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Expression::parse(&source).map_err(serde::de::Error::custom)
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The parser is recursive, and in a debug build a few dozen levels of nesting take megabytes
/// of stack: it runs on a thread of its own with this much (reserved, touched only as used).
const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Parses, walks (refusing trees too deep) and compiles on a thread with a large stack; the
/// tree is dropped there too. What comes back is at most [`MAX_TREE_DEPTH`] deep, which the
/// evaluator walks on any thread.
fn compile_on_a_large_stack(source: String) -> Result<(Program, Walk), ExpressionError> {
    let worker = std::thread::Builder::new()
        .name("cel-parse".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || -> Result<(Program, Walk), ExpressionError> {
            let tree = cel_parser::Parser::default()
                .parse(&source)
                .map_err(|error| ExpressionError::new(format!("syntax error: {error}")))?;
            let mut walk = Walk::default();
            walk.visit(&tree, 0, 0, &mut Vec::new())?;
            let program = Program::compile(&source)
                .map_err(|error| ExpressionError::new(format!("syntax error: {error}")))?;
            Ok((program, walk))
        })
        .map_err(|_| ExpressionError::new("the expression parser could not start"))?;
    worker
        .join()
        // The parser panics on some malformed input (an operator missing its operand).
        .map_err(|_| {
            ExpressionError::new("syntax error: the expression is incomplete or malformed")
        })?
}

/// Refuses brackets nested deeper than [`MAX_NESTING`] and long runs of unary operators, before
/// the (recursive) parser sees them.
fn check_nesting(source: &str) -> Result<(), ExpressionError> {
    let mut depth = 0usize;
    let mut unary_run = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ExpressionError::new(format!(
                        "brackets nested deeper than {MAX_NESTING}"
                    )));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '!' || c == '-' {
            unary_run += 1;
            if unary_run > MAX_NESTING {
                return Err(ExpressionError::new(format!(
                    "more than {MAX_NESTING} `!` or `-` in a row"
                )));
            }
        } else if !c.is_whitespace() {
            unary_run = 0;
        }
    }
    Ok(())
}

/// What a walk of the syntax tree finds.
#[derive(Default)]
struct Walk {
    roots: BTreeSet<String>,
    node_ids: BTreeSet<String>,
}

const MACROS: [&str; 6] = ["map", "filter", "all", "exists", "exists_one", "existsOne"];

impl Walk {
    /// `bound`: the names comprehensions bind around this point.
    fn visit(
        &mut self,
        node: &IdedExpr,
        depth: usize,
        macros: usize,
        bound: &mut Vec<String>,
    ) -> Result<(), ExpressionError> {
        if depth > MAX_TREE_DEPTH {
            return Err(ExpressionError::new(format!(
                "the expression is nested deeper than {MAX_TREE_DEPTH} levels"
            )));
        }
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !bound.iter().any(|b| b == name) {
                    self.roots.insert(name.clone());
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(name) = &select.operand.expr
                    && name == "nodes"
                    && !bound.iter().any(|b| b == name)
                {
                    self.node_ids.insert(select.field.clone());
                }
                self.visit(&select.operand, depth + 1, macros, bound)?;
            }
            Expr::Call(call) => {
                // `nodes["X"]`
                if call.func_name == "_[_]"
                    && let [target, key] = call.args.as_slice()
                    && matches!(&target.expr, Expr::Ident(name) if name == "nodes")
                    && let Expr::Literal(cel_parser::reference::Val::String(id)) = &key.expr
                {
                    self.node_ids.insert(id.clone());
                }
                let macros = if MACROS.contains(&call.func_name.as_str()) && call.target.is_some() {
                    macros + 1
                } else {
                    macros
                };
                if macros > MAX_MACRO_NESTING {
                    return Err(ExpressionError::new(format!(
                        "macros nested deeper than {MAX_MACRO_NESTING}"
                    )));
                }
                if let Some(target) = &call.target {
                    self.visit(target, depth + 1, macros, bound)?;
                }
                for arg in &call.args {
                    self.visit(arg, depth + 1, macros, bound)?;
                }
            }
            Expr::Comprehension(comprehension) => {
                let macros = macros + 1;
                if macros > MAX_MACRO_NESTING {
                    return Err(ExpressionError::new(format!(
                        "macros nested deeper than {MAX_MACRO_NESTING}"
                    )));
                }
                self.visit(&comprehension.iter_range, depth + 1, macros, bound)?;
                let before = bound.len();
                bound.push(comprehension.iter_var.clone());
                if let Some(second) = &comprehension.iter_var2 {
                    bound.push(second.clone());
                }
                bound.push(comprehension.accu_var.clone());
                for part in [
                    &comprehension.accu_init,
                    &comprehension.loop_cond,
                    &comprehension.loop_step,
                    &comprehension.result,
                ] {
                    self.visit(part, depth + 1, macros, bound)?;
                }
                bound.truncate(before);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.visit(element, depth + 1, macros, bound)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.visit_entry(&entry.expr, depth + 1, macros, bound)?;
                }
            }
            Expr::Struct(structure) => {
                for entry in &structure.entries {
                    self.visit_entry(&entry.expr, depth + 1, macros, bound)?;
                }
            }
        }
        Ok(())
    }

    fn visit_entry(
        &mut self,
        entry: &EntryExpr,
        depth: usize,
        macros: usize,
        bound: &mut Vec<String>,
    ) -> Result<(), ExpressionError> {
        match entry {
            EntryExpr::StructField(field) => self.visit(&field.value, depth, macros, bound),
            EntryExpr::MapEntry(map_entry) => {
                self.visit(&map_entry.key, depth, macros, bound)?;
                self.visit(&map_entry.value, depth, macros, bound)
            }
        }
    }
}

/// JSON to CEL: integers that fit are `int`, other integers `uint`, the rest `double`.
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = number.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(text) => CelValue::String(Arc::new(text.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: HashMap<Key, CelValue> = map
                .iter()
                .map(|(key, item)| (Key::String(Arc::new(key.clone())), to_cel(item)))
                .collect();
            CelValue::Map(Map {
                map: Arc::new(entries),
            })
        }
    }
}

/// CEL to JSON: timestamps as RFC 3339 text, durations as seconds with an `s` (CEL's JSON
/// form), bytes refused.
fn from_cel(value: &CelValue) -> Result<Value, ExpressionError> {
    Ok(match value {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| ExpressionError::new("the result is not a finite number"))?,
        CelValue::String(text) => Value::String(text.as_str().to_owned()),
        CelValue::Bytes(_) => return Err(ExpressionError::new("the result is bytes, not JSON")),
        CelValue::List(items) => {
            Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?)
        }
        CelValue::Map(map) => {
            let mut object = serde_json::Map::new();
            for (key, item) in map.map.iter() {
                let key = match key {
                    Key::String(text) => text.as_str().to_owned(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                object.insert(key, from_cel(item)?);
            }
            Value::Object(object)
        }
        CelValue::Duration(duration) => {
            let seconds = duration.num_milliseconds() as f64 / 1000.0;
            Value::String(format!("{seconds}s"))
        }
        CelValue::Timestamp(at) => Value::String(at.to_rfc3339()),
        CelValue::Function(name, _) => {
            return Err(ExpressionError::new(format!(
                "the result is the function `{name}`, not a value"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Value {
        json!({
            "input": {"count": 12, "text": "urgent: disk full", "tags": ["a", "b"], "size": 1.5},
            "nodes": {"check": {"output": {"score": 0.9, "label": "big"}}},
            "run": {"id": "r1"},
            "secrets": {"API_KEY": "s3cr3t"},
        })
    }

    fn parse(source: &str) -> Expression {
        Expression::parse(source).unwrap()
    }

    #[test]
    fn booleans_evaluate() {
        assert!(parse("input.count > 10").evaluate_bool(&scope()).unwrap());
        assert!(!parse("input.count > 12").evaluate_bool(&scope()).unwrap());
        assert!(
            parse("input.text.startsWith('urgent') && nodes.check.output.score >= 0.5")
                .evaluate_bool(&scope())
                .unwrap()
        );
        assert!(
            parse("input.tags.exists(t, t == 'b')")
                .evaluate_bool(&scope())
                .unwrap()
        );
        assert!(
            parse("size(input.tags) == 2")
                .evaluate_bool(&scope())
                .unwrap()
        );
    }

    #[test]
    fn a_non_boolean_result_is_an_error_for_evaluate_bool() {
        let error = parse("input.count").evaluate_bool(&scope()).unwrap_err();
        assert!(error.to_string().contains("not a boolean"), "{error}");
    }

    #[test]
    fn values_evaluate_to_json() {
        assert_eq!(
            parse("input.tags.map(t, t + '!')")
                .evaluate(&scope())
                .unwrap(),
            json!(["a!", "b!"])
        );
        assert_eq!(
            parse("{'n': input.count * 2}").evaluate(&scope()).unwrap(),
            json!({"n": 24})
        );
    }

    #[test]
    fn cases_are_strings_or_numbers_as_text() {
        assert_eq!(
            parse("nodes.check.output.label")
                .evaluate_case(&scope())
                .unwrap(),
            "big"
        );
        assert_eq!(
            parse("input.count + 1").evaluate_case(&scope()).unwrap(),
            "13"
        );
        assert_eq!(parse("input.size").evaluate_case(&scope()).unwrap(), "1.5");
        let error = parse("input.tags").evaluate_case(&scope()).unwrap_err();
        assert!(
            error.to_string().contains("not a string or a number"),
            "{error}"
        );
    }

    #[test]
    fn secrets_are_not_reachable_even_if_the_scope_has_them() {
        let error = parse("secrets.API_KEY == 's3cr3t'")
            .evaluate(&scope())
            .unwrap_err();
        assert!(error.to_string().contains("secrets"), "{error}");
        assert!(parse("secrets.API_KEY").roots().contains("secrets"));
    }

    #[test]
    fn errors_name_the_problem() {
        let error = Expression::parse("input.count >").unwrap_err();
        assert!(error.to_string().contains("syntax error"), "{error}");
        assert!(Expression::parse("").is_err());
        let error = Expression::parse(&"a".repeat(2001)).unwrap_err();
        assert!(error.to_string().contains("2000"), "{error}");
        let error = parse("input.missing > 1").evaluate(&scope()).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
        let error = parse("item > 1").evaluate(&scope()).unwrap_err();
        assert!(error.to_string().contains("item"), "{error}");
        let error = serde_json::from_value::<Expression>(json!("1 +")).unwrap_err();
        assert!(error.to_string().contains("syntax error"), "{error}");
    }

    #[test]
    fn overflow_is_an_error_not_a_crash() {
        assert!(parse("9223372036854775807 + 1").evaluate(&scope()).is_err());
    }

    #[test]
    fn roots_and_node_ids_are_extracted() {
        let expression = parse(
            "nodes.check.output.score > 0.5 && nodes['other'].output && input.tags.all(t, t != item)",
        );
        assert_eq!(
            expression.roots(),
            BTreeSet::from(["nodes".to_owned(), "input".to_owned(), "item".to_owned()])
        );
        assert_eq!(
            expression.node_ids(),
            BTreeSet::from(["check".to_owned(), "other".to_owned()])
        );
    }

    #[test]
    fn deep_or_costly_expressions_are_refused() {
        let deep = format!("{}1{}", "(".repeat(33), ")".repeat(33));
        assert!(Expression::parse(&deep).is_err());
        let nots = format!("{}true", "!".repeat(33));
        let error = Expression::parse(&vec!["1"; 100].join("+")).unwrap_err();
        assert!(error.to_string().contains("deeper than"), "{error}");
        assert!(Expression::parse(&nots).is_err());
        let nested = "input.tags.all(a, input.tags.all(b, input.tags.all(c, a == b)))";
        let error = Expression::parse(nested).unwrap_err();
        assert!(error.to_string().contains("macros"), "{error}");
        assert!(Expression::parse("input.tags.all(a, input.tags.exists(b, a == b))").is_ok());
    }

    #[test]
    fn the_worst_inputs_within_the_limits_do_not_exhaust_a_workers_stack() {
        // Parsing runs on its own large stack; evaluation runs on the caller's, here the size
        // of a tokio worker's (2 MiB).
        let inputs = [
            format!("{}1{}", "(".repeat(32), ")".repeat(32)),
            vec!["1"; 999].join("+"),
            vec!["true"; 399].join(" && "),
            format!("input{}", ".x".repeat(300)),
            vec!["true ? 1 :"; 199].join(" ") + " 2",
            format!("{}true", "!".repeat(32)),
            format!("[{}]", vec!["[1]"; 400].join(",")),
        ];
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                for input in inputs {
                    if let Ok(expression) = Expression::parse(&input) {
                        let _ = expression.evaluate(&json!({"input": {}}));
                    }
                }
                let sum = Expression::parse(&vec!["1"; 60].join("+")).unwrap();
                sum.evaluate(&json!({})).unwrap()
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), json!(60));
    }
}
