//! Structural checks of a parsed `comfy.toml` against the manifest's own JSON Schema.
//!
//! The schema generated from `raw.rs` is the one description of the manifest's shape, so this
//! module interprets the small subset of JSON Schema that schemars emits for it (`$ref`, `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `oneOf`, `anyOf`,
//! `minimum`, `maximum`) over the spanned TOML tree. It reports every problem instead of stopping
//! at the first, drops each offending value from the tree, and records the span of every value so
//! that later (semantic) checks can point into the file too.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Problem, Source};

/// One step of a path into the manifest: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Path of a value in the manifest, e.g. `nodes[2].rev`.
pub type Path = Vec<Seg>;

/// Where a value (and its key, for table entries) stands in the file.
#[derive(Debug, Clone)]
pub struct Spans {
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
}

/// Spans of every value that passed the structural checks, by path.
#[derive(Debug, Default)]
pub struct SpanMap(HashMap<Path, Spans>);

impl SpanMap {
    /// Span of the value at `path`, or of its nearest recorded ancestor.
    pub fn value(&self, path: &[Seg]) -> Range<usize> {
        for n in (0..=path.len()).rev() {
            if let Some(s) = self.0.get(&path[..n]) {
                return s.value.clone();
            }
        }
        0..0
    }

    /// Key and value together (`name = "x"`), for problems about a whole entry.
    pub fn entry(&self, path: &[Seg]) -> Range<usize> {
        match self.0.get(path) {
            Some(Spans {
                key: Some(k),
                value,
            }) if k.start <= value.start => k.start..value.end,
            _ => self.value(path),
        }
    }
}

/// Human form of a path: `nodes[2].rev`, or `the top level` for the root.
pub fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "the top level".to_owned()
    } else {
        out
    }
}

/// The result of checking a document: the values that passed (as JSON, ready for serde), their
/// spans, and every problem found.
pub struct Checked {
    pub value: Value,
    pub spans: SpanMap,
    pub problems: Vec<Problem>,
}

/// Check a parsed document against `schema` (the root schema with its `$defs`).
pub fn check(source: &Source, doc: &Spanned<DeTable<'_>>, schema: &Value) -> Checked {
    let mut checker = Checker {
        source,
        root: schema,
        spans: SpanMap::default(),
        problems: Vec::new(),
    };
    let mut path = Vec::new();
    checker.spans.0.insert(
        path.clone(),
        Spans {
            key: None,
            value: doc.span(),
        },
    );
    let value = checker
        .table(schema, doc.get_ref(), doc.span(), &mut path)
        .unwrap_or(Value::Object(Map::new()));
    Checked {
        value,
        spans: checker.spans,
        problems: checker.problems,
    }
}

struct Checker<'a> {
    source: &'a Source,
    root: &'a Value,
    spans: SpanMap,
    problems: Vec<Problem>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn schema_type_name(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "array" => "an array",
        "object" => "a table",
        _ => "a value",
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn integer(v: &DeValue<'_>) -> Option<i64> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    }
}

/// First sentence of a schema description, on one line, for help lines.
fn first_sentence(desc: &str) -> String {
    let desc = desc.split_whitespace().collect::<Vec<_>>().join(" ");
    match desc.find(". ") {
        Some(i) => desc[..=i].to_owned(),
        None => desc,
    }
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // schemars only emits local `#/$defs/...` references.
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    /// Branches of a `oneOf`/`anyOf`, without `null` (TOML has no null: an absent key is `None`).
    fn branches(&self, schema: &'a Value) -> Option<Vec<&'a Value>> {
        let list = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))?
            .as_array()?;
        Some(
            list.iter()
                .map(|b| self.resolve(b))
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect(),
        )
    }

    /// Short human description of what a schema accepts, for "expected ..." messages.
    fn expected(&self, schema: &'a Value) -> String {
        let schema = self.resolve(schema);
        if let Some(c) = schema.get("const") {
            return c.to_string();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return join_or(values.iter().map(Value::to_string).collect());
        }
        if let Some(branches) = self.branches(schema) {
            return join_or(branches.into_iter().map(|b| self.expected(b)).collect());
        }
        match schema_types(schema).as_slice() {
            ["integer"] => match schema.get("minimum").and_then(Value::as_i64) {
                Some(1) => "a positive integer".to_owned(),
                _ => "an integer".to_owned(),
            },
            [t] => schema_type_name(t).to_owned(),
            _ => "a value".to_owned(),
        }
    }

    fn problem(&self, code: &'static str, span: Range<usize>, message: String) -> Problem {
        Problem::new(self.source, code, span, message)
    }

    fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn value(
        &mut self,
        schema: &'a Value,
        v: &Spanned<DeValue<'_>>,
        path: &mut Path,
        desc: Option<&str>,
    ) -> Option<Value> {
        let schema = self.resolve(schema);
        let span = v.span();
        let here = display_path(path);

        if let Some(branches) = self.branches(schema) {
            if let [only] = branches.as_slice() {
                return self.value(only, v, path, desc);
            }
            // Try each branch quietly; the first that accepts the value wins.
            for b in &branches {
                let mut trial = Checker {
                    source: self.source,
                    root: self.root,
                    spans: SpanMap::default(),
                    problems: Vec::new(),
                };
                if let Some(out) = trial.value(b, v, path, desc)
                    && trial.problems.is_empty()
                {
                    self.spans.0.extend(trial.spans.0);
                    return Some(out);
                }
            }
            let expected = self.expected(schema);
            let found = describe_found(v.get_ref());
            let consts: Vec<&str> = branches
                .iter()
                .filter_map(|b| b.get("const").and_then(Value::as_str))
                .collect();
            let hint = v
                .get_ref()
                .as_str()
                .and_then(|s| did_you_mean(s, consts.iter().copied()));
            let help = match (hint, desc) {
                (Some(h), _) => format!("did you mean \"{h}\"?"),
                (None, Some(d)) => format!("`{here}`: {}", first_sentence(d)),
                (None, None) => format!("use {expected}"),
            };
            let p = self
                .problem(
                    "invalid_value",
                    span,
                    format!("`{here}` must be {expected}, not {found}"),
                )
                .label(format!("expected {expected}"))
                .help(help);
            self.push(p);
            return None;
        }

        if let Some(c) = schema.get("const") {
            return self.enumerated(std::slice::from_ref(c), v, path, desc);
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return self.enumerated(values, v, path, desc);
        }

        let types = schema_types(schema);
        let ok = types.iter().any(|t| {
            matches!(
                (*t, v.get_ref()),
                ("string", DeValue::String(_))
                    | ("integer", DeValue::Integer(_))
                    | ("number", DeValue::Integer(_) | DeValue::Float(_))
                    | ("boolean", DeValue::Boolean(_))
                    | ("array", DeValue::Array(_))
                    | ("object", DeValue::Table(_))
            )
        });
        if !ok {
            let expected = self.expected(schema);
            let found = type_name(v.get_ref());
            let help = match desc {
                Some(d) => format!("`{here}`: {}", first_sentence(d)),
                None => format!("write {expected} here"),
            };
            let p = self
                .problem(
                    "wrong_type",
                    span,
                    format!("`{here}` must be {expected}, not {found}"),
                )
                .label(format!("expected {expected}"))
                .help(help);
            self.push(p);
            return None;
        }

        match v.get_ref() {
            DeValue::String(s) => Some(Value::String(s.to_string())),
            DeValue::Boolean(b) => Some(Value::Bool(*b)),
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            DeValue::Datetime(d) => Some(Value::String(d.to_string())),
            DeValue::Integer(_) => {
                let min = schema
                    .get("minimum")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MIN);
                let max = schema
                    .get("maximum")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX);
                match integer(v.get_ref()) {
                    Some(n) if (min..=max).contains(&n) => Some(Value::from(n)),
                    n => {
                        let range = match (schema.get("minimum"), schema.get("maximum")) {
                            (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
                            (Some(lo), None) => format!("at least {lo}"),
                            (None, Some(hi)) => format!("at most {hi}"),
                            (None, None) => "a 64-bit integer".to_owned(),
                        };
                        let shown = n
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "this number".to_owned());
                        let help = match desc {
                            Some(d) => {
                                format!("`{here}` is a number {range}: {}", first_sentence(d))
                            }
                            None => format!("use a number {range}"),
                        };
                        let p = self
                            .problem(
                                "out_of_range",
                                span,
                                format!("`{here}` is out of range: {shown}"),
                            )
                            .label(format!("must be {range}"))
                            .help(help);
                        self.push(p);
                        None
                    }
                }
            }
            DeValue::Array(items) => {
                let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.spans.0.insert(
                        path.clone(),
                        Spans {
                            key: None,
                            value: item.span(),
                        },
                    );
                    if let Some(x) = self.value(item_schema, item, path, None) {
                        out.push(x);
                    }
                    path.pop();
                }
                Some(Value::Array(out))
            }
            DeValue::Table(t) => self.table(schema, t, span, path),
        }
    }

    fn enumerated(
        &mut self,
        allowed: &[Value],
        v: &Spanned<DeValue<'_>>,
        path: &Path,
        desc: Option<&str>,
    ) -> Option<Value> {
        let here = display_path(path);
        if let DeValue::String(s) = v.get_ref()
            && allowed.iter().any(|a| a.as_str() == Some(s.as_ref()))
        {
            return Some(Value::String(s.to_string()));
        }
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let expected = join_or(allowed.iter().map(Value::to_string).collect());
        let hint = v
            .get_ref()
            .as_str()
            .and_then(|s| did_you_mean(s, names.iter().copied()));
        let help = match (hint, desc) {
            (Some(h), _) => format!("did you mean \"{h}\"?"),
            (None, Some(d)) => format!("`{here}`: {}", first_sentence(d)),
            (None, None) => format!("use {expected}"),
        };
        let found = describe_found(v.get_ref());
        let p = self
            .problem(
                "invalid_value",
                v.span(),
                format!("`{here}` must be {expected}, not {found}"),
            )
            .label(format!("expected {expected}"))
            .help(help);
        self.push(p);
        None
    }

    fn table(
        &mut self,
        schema: &'a Value,
        t: &DeTable<'_>,
        span: Range<usize>,
        path: &mut Path,
    ) -> Option<Value> {
        let here = display_path(path);
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut out = Map::new();

        for (k, v) in t.iter() {
            let key: &str = k.get_ref();
            path.push(Seg::Key(key.to_owned()));
            self.spans.0.insert(
                path.clone(),
                Spans {
                    key: Some(k.span()),
                    value: v.span(),
                },
            );
            let prop = props.and_then(|p| p.get(key));
            let sub = match (prop, additional) {
                (Some(s), _) => Some(s),
                (None, Some(Value::Bool(false))) => None,
                (None, Some(s)) => Some(s),
                (None, None) => Some(&Value::Bool(true)),
            };
            match sub {
                Some(s) => {
                    let desc = s
                        .get("description")
                        .and_then(Value::as_str)
                        .or_else(|| self.resolve(s).get("description").and_then(Value::as_str));
                    if let Some(x) = self.value(s, v, path, desc) {
                        out.insert(key.to_owned(), x);
                    }
                }
                None => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let help = match did_you_mean(key, known.iter().copied()) {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => format!(
                            "keys allowed in {}: {}",
                            table_name(&here),
                            known.join(", ")
                        ),
                    };
                    let p = self
                        .problem(
                            "unknown_key",
                            k.span(),
                            format!("unknown key `{key}` {}", table_name(&here)),
                        )
                        .label("unknown key")
                        .help(help);
                    self.push(p);
                }
            }
            path.pop();
        }

        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if t.iter().any(|(k, _)| k.get_ref() == r) {
                    continue;
                }
                let prop = props.and_then(|p| p.get(r));
                let is_table = prop
                    .map(|p| schema_types(self.resolve(p)).contains(&"object"))
                    .unwrap_or(false);
                let desc = prop
                    .and_then(|p| {
                        p.get("description")
                            .or_else(|| self.resolve(p).get("description"))
                    })
                    .and_then(Value::as_str);
                let what = if is_table {
                    format!("table `[{r}]`")
                } else {
                    format!("key `{r}`")
                };
                let mut help = if is_table {
                    format!("add a `[{r}]` table")
                } else {
                    format!("add `{r} = …` {}", table_name(&here))
                };
                if let Some(d) = desc {
                    help.push_str(": ");
                    help.push_str(&first_sentence(d));
                }
                // Point at the table header (or the start of the file for the top level).
                let at = if path.is_empty() { 0..0 } else { span.clone() };
                let p = self
                    .problem(
                        "missing_key",
                        at,
                        format!("missing {what} {}", table_name(&here)),
                    )
                    .label(format!("`{r}` is required here"))
                    .help(help);
                self.push(p);
            }
        }
        Some(Value::Object(out))
    }
}

/// `at the top level` or ``in `[container]` ``, for messages.
fn table_name(here: &str) -> String {
    if here == "the top level" {
        "at the top level".to_owned()
    } else {
        format!("in `[{here}]`")
    }
}

fn schema_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    }
}

fn describe_found(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("\"{}\"", s.escape_debug()),
        DeValue::Integer(i) => i.as_str().to_owned(),
        DeValue::Boolean(b) => b.to_string(),
        other => type_name(other).to_owned(),
    }
}

fn join_or(items: Vec<String>) -> String {
    match items.len() {
        0 => "nothing".to_owned(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}
