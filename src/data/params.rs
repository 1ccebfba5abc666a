//! Typed request parameters for data routes: route path templates (`/api/products/{id:int}`),
//! declared JSON body fields, and cache-tag templates (`product:{id}`).
//!
//! Values are checked against their declared type here, so a bad request becomes a 400/422
//! naming the parameter instead of a database error.

use std::fmt;

/// A parameter's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    /// A 64-bit signed integer.
    Int,
    /// A finite 64-bit float.
    Float,
    /// Non-empty text (in paths), without NUL characters.
    Str,
    /// `true` or `false`.
    Bool,
}

impl ParamType {
    /// Parses a config type name: `int`, `float`, `str` (or `string`), `bool`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "int" => Ok(Self::Int),
            "float" => Ok(Self::Float),
            "str" | "string" => Ok(Self::Str),
            "bool" => Ok(Self::Bool),
            _ => Err(format!(
                "unknown type `{s}` (expected int, float, str or bool)"
            )),
        }
    }

    /// Parses text (an already-decoded path segment) as this type; `Err` is a message such as
    /// "must be an integer". Strict, so a value has few spellings: ints are `-?[0-9]+` within
    /// i64, floats are finite, bools are `true`/`false`, and "" is never valid.
    pub(crate) fn parse_text(self, s: &str) -> Result<Value, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        let digits = s.strip_prefix('-').unwrap_or(s);
        let value = match self {
            Self::Int if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                return s
                    .parse()
                    .map(Value::Int)
                    .map_err(|_| "is out of range".into());
            }
            Self::Int => None,
            Self::Float => s
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite())
                .map(Value::Float),
            Self::Str => return str_value(s),
            // bool's FromStr accepts exactly "true" and "false".
            Self::Bool => s.parse().ok().map(Value::Bool),
        };
        value.ok_or_else(|| self.expected().into())
    }

    /// The message for a value of the wrong type.
    fn expected(self) -> &'static str {
        match self {
            Self::Int => "must be an integer",
            Self::Float => "must be a number",
            Self::Str => "must be a string",
            Self::Bool => "must be true or false",
        }
    }
}

/// PostgreSQL text cannot hold NUL; rejecting it here makes that a 400, not a database error.
fn str_value(s: &str) -> Result<Value, String> {
    if s.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(Value::Str(s.to_owned()))
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (never produced by paths or bodies, which reject missing values).
    Null,
    /// The value of an `int` parameter or body field.
    Int(i64),
    /// The value of a `float` parameter or body field.
    Float(f64),
    /// The value of a `str` parameter or body field.
    Str(String),
    /// The value of a `bool` parameter or body field.
    Bool(bool),
}

impl Value {
    /// Does a JSON body value say the same as this path value (of the same type)?
    fn is_json(&self, v: &serde_json::Value) -> bool {
        match self {
            Value::Null => v.is_null(),
            Value::Int(i) => v.as_i64() == Some(*i),
            Value::Float(f) => v.as_f64() == Some(*f),
            Value::Str(s) => v.as_str() == Some(s.as_str()),
            Value::Bool(b) => v.as_bool() == Some(*b),
        }
    }

    /// Text for tag templates: numbers and bools as Rust prints them (so `1.0` and `1e0` both
    /// give `1`, and `-0.0` gives `0`: one tag per value), strings as is, `Null` as `null`.
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Null => "null".into(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) if *f == 0.0 => "0".into(),
            Self::Float(f) => f.to_string(),
            Self::Str(s) => s.clone(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// Why a request's parameter is unusable (becomes a 400/422 JSON error naming `name`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamError {
    /// The parameter or body field (`body` for the body as a whole).
    pub(crate) name: String,
    /// What is wrong, phrased to follow the name: "is required", "must be an integer".
    pub(crate) message: String,
}

impl ParamError {
    fn new(name: &str, message: impl Into<String>) -> Self {
        let (name, message) = (name.to_owned(), message.into());
        Self { name, message }
    }
}

/// `name message`, e.g. "id must be an integer".
impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.message)
    }
}

impl std::error::Error for ParamError {}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String, ParamType),
}

/// A route path like `/api/products/{id:int}` or `/api/users/{name}` (type defaults to str).
#[derive(Debug, Clone)]
pub(crate) struct PathTemplate {
    /// Its `/`-separated segments in order: literals to match, typed parameters to extract.
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template. It must start with `/`; `{name}` / `{name:type}` must be a whole
    /// segment, names are unique identifiers, and only the last segment may be empty.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s
            .strip_prefix('/')
            .ok_or("must start with '/'")?
            .split('/')
            .collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let (name, ty) = inner.split_once(':').unwrap_or((inner, "str"));
                check_name(name)?;
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n, _) if n == name))
                {
                    return Err(format!("duplicate path parameter `{name}`"));
                }
                segments.push(Segment::Param(name.to_owned(), ParamType::parse(ty)?));
            } else if part.contains(['{', '}']) {
                return Err(format!("`{part}`: a {{parameter}} must be a whole segment"));
            } else if part.is_empty() && i + 1 < parts.len() {
                return Err("empty path segment ('//')".into());
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(Self { segments })
    }

    /// Matches a request path (no query string), percent-decoding each segment.
    ///
    /// `None`: the path does not have this shape (segment count or a literal segment differs;
    /// a trailing slash counts). `Some(Err)`: right shape, but a parameter is not a valid
    /// value of its type. All literal segments are checked before any parameter is typed.
    pub(crate) fn matches(&self, path: &str) -> Option<Result<Vec<(String, Value)>, ParamError>> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(lit) if percent_decode(part).ok()? != *lit => return None,
                Segment::Literal(_) => {}
                Segment::Param(name, ty) => params.push((name, ty, part)),
            }
        }
        let typed = params.into_iter().map(|(name, ty, part)| {
            let value = percent_decode(part).and_then(|text| ty.parse_text(&text));
            value
                .map(|v| (name.clone(), v))
                .map_err(|m| ParamError::new(name, m))
        });
        Some(typed.collect())
    }

    /// The parameter names, in path order.
    pub(crate) fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name, _) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

/// Names must be usable as SQL `:name` parameters: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid parameter name `{name}`"))
    }
}

/// Decodes `%XX` escapes (`+` stays literal in paths); the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let hex = |j: usize| bytes.get(j).and_then(|&b| char::from(b).to_digit(16));
    let (mut out, mut i) = (Vec::with_capacity(bytes.len()), 0);
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
        } else if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            return Err("has an invalid percent-encoding".into());
        }
    }
    String::from_utf8(out).map_err(|_| "is not valid UTF-8".into())
}

/// What a write route's body holds: its declared fields and their types, and what else it may
/// carry and is ignored (so a client can PUT back the object it read).
#[derive(Debug, Default)]
pub(crate) struct BodySpec {
    /// The fields the write takes, and their types.
    pub(crate) fields: Vec<(String, ParamType)>,
    /// Fields the route's read returns but its write does not take, whatever their value
    /// (columns the database sets, such as `updated_at`): `[[route]] read_only`.
    pub(crate) read_only: Vec<String>,
}

impl BodySpec {
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Declared JSON body fields of a write route.
///
/// The body must be an object holding the declared fields: a missing or `null` field "is
/// required". It may also hold the route's read-only fields, and the path's own parameters
/// when they say what the path says (`"id": 7` on `/api/products/7`), which are ignored; a
/// path parameter that differs "does not match the path", any other field "is not a field of
/// this route". Unknown fields are reported first, so a typo names itself rather than the
/// field it misspells.
pub(crate) fn body_values(
    body: &serde_json::Value,
    spec: &BodySpec,
    path: &[(String, Value)],
) -> Result<Vec<(String, Value)>, ParamError> {
    let fields = &spec.fields;
    let obj = body
        .as_object()
        .ok_or_else(|| ParamError::new("body", "must be a JSON object"))?;
    for (k, v) in obj {
        if fields.iter().any(|(f, _)| f == k) || spec.read_only.contains(k) {
            continue;
        }
        match path.iter().find(|(p, _)| p == k) {
            Some((_, p)) if p.is_json(v) => {}
            Some(_) => return Err(ParamError::new(k, "does not match the path")),
            None => return Err(ParamError::new(k, "is not a field of this route")),
        }
    }
    let mut values = Vec::with_capacity(fields.len());
    for (name, ty) in fields {
        let err = |message: &str| ParamError::new(name, message);
        let v = obj
            .get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| err("is required"))?;
        let value = match ty {
            ParamType::Int if v.is_u64() && !v.is_i64() => return Err(err("is out of range")),
            ParamType::Int => v.as_i64().map(Value::Int),
            ParamType::Float => v.as_f64().filter(|f| f.is_finite()).map(Value::Float),
            ParamType::Str => v.as_str().map(str_value).transpose().map_err(|m| err(&m))?,
            ParamType::Bool => v.as_bool().map(Value::Bool),
        };
        values.push((name.clone(), value.ok_or_else(|| err(ty.expected()))?));
    }
    Ok(values)
}

/// Splits a template into (text, following `{name}`) pairs; stray braces are errors.
fn pieces(tpl: &str) -> Result<Vec<(&str, Option<&str>)>, String> {
    let (mut out, mut rest) = (Vec::new(), tpl);
    while let Some(open) = rest.find(['{', '}']) {
        let (text, after) = rest.split_at(open);
        let (name, tail) = (after.strip_prefix('{').and_then(|a| a.split_once('}')))
            .ok_or_else(|| format!("unbalanced braces in template `{tpl}`"))?;
        check_name(name).map_err(|e| format!("{e} in template `{tpl}`"))?;
        out.push((text, Some(name)));
        rest = tail;
    }
    out.push((rest, None));
    Ok(out)
}

/// Renders a tag template such as `product:{id}` with the values; an unknown name is an error.
pub(crate) fn render_template(tpl: &str, values: &[(String, Value)]) -> Result<String, String> {
    let mut out = String::with_capacity(tpl.len());
    for (text, name) in pieces(tpl)? {
        out.push_str(text);
        if let Some(name) = name {
            let (_, v) = (values.iter().find(|(k, _)| k == name))
                .ok_or_else(|| format!("unknown parameter `{name}` in template `{tpl}`"))?;
            out.push_str(&v.render());
        }
    }
    Ok(out)
}

/// The distinct `{name}` names a template uses, in first-use order (for config validation).
pub(crate) fn template_names(tpl: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in pieces(tpl)?.into_iter().filter_map(|(_, name)| name) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ParamType::*;
    use serde_json::json;

    /// Ok values as `name=Debug` joined by spaces, or the error as "name message".
    fn show(r: Result<Vec<(String, Value)>, ParamError>) -> String {
        let fmt = |v: Vec<(String, Value)>| -> Vec<String> {
            v.iter().map(|(k, v)| format!("{k}={v:?}")).collect()
        };
        r.map_or_else(|e| e.to_string(), |v| fmt(v).join(" "))
    }

    /// A match outcome as text, "-" for no match.
    fn m(tpl: &str, path: &str) -> String {
        let tpl = PathTemplate::parse(tpl).unwrap();
        tpl.matches(path).map_or("-".into(), show)
    }

    #[test]
    fn param_types() {
        for (name, t) in [("int", Int), ("float", Float), ("str", Str), ("bool", Bool)] {
            assert_eq!(ParamType::parse(name), Ok(t));
        }
        assert_eq!(ParamType::parse("string"), Ok(Str));
        let unknown = ParamType::parse("Int").unwrap_err();
        assert_eq!(
            unknown,
            "unknown type `Int` (expected int, float, str or bool)"
        );
    }

    #[test]
    fn text_parsing_is_strict() {
        let (int, num, range) = ("must be an integer", "must be a number", "is out of range");
        for (ty, input, want) in [
            (Int, "42", "Int(42)"),
            (Int, "-7", "Int(-7)"),
            (Int, "007", "Int(7)"),
            (Int, "-9223372036854775808", "Int(-9223372036854775808)"),
            (Int, "9223372036854775808", range),
            (Int, "-9223372036854775809", range),
            (Int, "99999999999999999999999", range),
            (Int, "+1", int),
            (Int, "1.0", int),
            (Int, " 1", int),
            (Int, "0x10", int),
            (Int, "-", int),
            (Int, "--1", int),
            (Int, "1e3", int),
            (Int, "١", int),
            (Float, "1.5", "Float(1.5)"),
            (Float, "-2", "Float(-2.0)"),
            (Float, "1e3", "Float(1000.0)"),
            (Float, "NaN", num),
            (Float, "inf", num),
            (Float, "-infinity", num),
            (Float, "1e999", num),
            (Float, "1,5", num),
            (Float, " 1", num),
            (Bool, "true", "Bool(true)"),
            (Bool, "false", "Bool(false)"),
            (Bool, "True", "must be true or false"),
            (Bool, "1", "must be true or false"),
            (Str, " é ", r#"Str(" é ")"#),
            (Str, "a\0", "must not contain NUL characters"),
            (Int, "", "must not be empty"),
            (Float, "", "must not be empty"),
            (Str, "", "must not be empty"),
            (Bool, "", "must not be empty"),
        ] {
            let got = ty
                .parse_text(input)
                .map_or_else(|e| e, |v| format!("{v:?}"));
            assert_eq!(got, want, "{ty:?} {input:?}");
        }
    }

    #[test]
    fn render_values() {
        let cases = [
            (Value::Null, "null"),
            (Value::Int(-3), "-3"),
            (Value::Bool(false), "false"),
        ];
        for (v, want) in cases {
            assert_eq!(v.render(), want);
        }
        for (f, want) in [
            (1.0, "1"),
            (-0.0, "0"),
            (0.25, "0.25"),
            (1e21, "1000000000000000000000"),
        ] {
            assert_eq!(Value::Float(f).render(), want);
        }
        assert_eq!(Value::Str("a b/é".into()).render(), "a b/é");
    }

    #[test]
    fn template_parse_errors() {
        for (tpl, want) in [
            ("api/x", "must start with '/'"),
            ("", "must start with '/'"),
            ("/a/x{id}", "`x{id}`: a {parameter} must be a whole segment"),
            ("/a/{id}x", "`{id}x`: a {parameter} must be a whole segment"),
            ("/a/{id", "`{id`: a {parameter} must be a whole segment"),
            ("/a/}", "`}`: a {parameter} must be a whole segment"),
            ("/a/{}", "invalid parameter name ``"),
            ("/a/{1d}", "invalid parameter name `1d`"),
            ("/a/{i-d:int}", "invalid parameter name `i-d`"),
            ("/a/{i:x}", "unknown type `x`"),
            ("/a/{i:}", "unknown type ``"),
            ("/a/{i:int:x}", "unknown type `int:x`"),
            ("/a/{id}/{id:int}", "duplicate path parameter `id`"),
            ("/a//b", "empty path segment ('//')"),
            ("//", "empty path segment ('//')"),
        ] {
            let err = PathTemplate::parse(tpl).unwrap_err();
            assert!(err.starts_with(want), "{tpl:?}: {err}");
        }
        let t = PathTemplate::parse("/a/{id:int}/b/{name}/{ok:bool}/").unwrap();
        assert_eq!(t.param_names().collect::<Vec<_>>(), ["id", "name", "ok"]);
    }

    #[test]
    fn path_matching() {
        let p = "/p/{i:int}/{f:float}/{b:bool}/{s:string}";
        for (tpl, path, want) in [
            ("/a/{id}", "/a/1", r#"id=Str("1")"#),
            // Shape is exact: segment count, literal case and trailing slash all matter.
            ("/a/{id}", "/a/1/", "-"),
            ("/a/{id}", "/a", "-"),
            ("/a/{id}", "a/1", "-"),
            ("/a/{id}", "", "-"),
            ("/a/{id}", "/A/1", "-"),
            ("/a/{id}", "//a/1", "-"),
            ("/a/{id}", "/a/", "id must not be empty"),
            ("/a/{id}/", "/a/1/", r#"id=Str("1")"#),
            ("/a/{id}/", "/a/1", "-"),
            ("/", "/", ""),
            ("/health", "/health", ""),
            ("/health", "/health/", "-"),
            // Literal segments are checked before parameters are typed.
            ("/a/{id:int}/b", "/a/x/c", "-"),
            ("/a/{id:int}/b", "/a/x/b", "id must be an integer"),
            (
                p,
                "/p/-5/2.5/true/x",
                r#"i=Int(-5) f=Float(2.5) b=Bool(true) s=Str("x")"#,
            ),
            (p, "/p/abc/1/true/x", "i must be an integer"),
            (p, "/p/1.0/1/true/x", "i must be an integer"),
            (p, "/p/99999999999999999999/1/true/x", "i is out of range"),
            (p, "/p/1/NaN/true/x", "f must be a number"),
            (p, "/p/1/1/yes/x", "b must be true or false"),
            (p, "/p/x/y/z/", "i must be an integer"),
            // Percent-decoding, before typing; `+` is not a space in paths.
            ("/u/{n}", "/u/a%20b%2Fc+d", r#"n=Str("a b/c+d")"#),
            ("/u/{n}", "/u/caf%C3%A9", r#"n=Str("café")"#),
            ("/u/{n}", "/u/%e2%9c%93é", r#"n=Str("✓é")"#),
            ("/u/{n:int}", "/u/%2D%31", "n=Int(-1)"),
            ("/u/{n:int}", "/u/%201", "n must be an integer"),
            ("/u/{n}", "/u/%", "n has an invalid percent-encoding"),
            ("/u/{n}", "/u/%4", "n has an invalid percent-encoding"),
            ("/u/{n}", "/u/%G1", "n has an invalid percent-encoding"),
            ("/u/{n}", "/u/%+1", "n has an invalid percent-encoding"),
            ("/u/{n}", "/u/a%é", "n has an invalid percent-encoding"),
            ("/u/{n}", "/u/%C3", "n is not valid UTF-8"),
            ("/u/{n}", "/u/%FF%FE", "n is not valid UTF-8"),
            ("/u/{n}", "/u/a%00", "n must not contain NUL characters"),
            // Literals compare decoded; an undecodable one just means "not this route".
            ("/café/{n}", "/caf%C3%A9/1", r#"n=Str("1")"#),
            ("/a/{n}", "/%61/1", r#"n=Str("1")"#),
            ("/a/{n}", "/%/1", "-"),
        ] {
            assert_eq!(m(tpl, path), want, "{tpl} {path}");
        }
    }

    #[test]
    fn body_fields() {
        let fields = [("id", Int), ("price", Float), ("name", Str), ("live", Bool)];
        let spec = BodySpec {
            fields: fields.map(|(n, t)| (n.into(), t)).into(),
            read_only: vec![],
        };
        let body_values = |b: &serde_json::Value, spec: &BodySpec| body_values(b, spec, &[]);
        let fields = &spec;
        let good = json!({"id": 1, "price": 2, "name": "é", "live": false});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = good.clone();
            b[k] = v;
            show(body_values(&b, fields))
        };
        let want = r#"id=Int(1) price=Float(2.0) name=Str("é") live=Bool(false)"#;
        assert_eq!(show(body_values(&good, fields)), want);
        for (k, v, want) in [
            ("id", json!(1.5), "id must be an integer"),
            ("id", json!(1.0), "id must be an integer"),
            ("id", json!("1"), "id must be an integer"),
            ("id", json!(u64::MAX), "id is out of range"),
            ("price", json!("2"), "price must be a number"),
            ("name", json!(3), "name must be a string"),
            ("name", json!(["x"]), "name must be a string"),
            ("name", json!("a\0"), "name must not contain NUL characters"),
            ("live", json!("true"), "live must be true or false"),
            ("live", json!(0), "live must be true or false"),
            ("live", json!(null), "live is required"),
            ("nmae", json!("x"), "nmae is not a field of this route"),
        ] {
            assert_eq!(with(k, v), want, "{k}");
        }
        let body = |b: serde_json::Value| show(body_values(&b, fields));
        assert_eq!(
            body(json!({"id": 1, "price": 2, "name": "x"})),
            "live is required"
        );
        // A typo names itself, not the field it misspells.
        let typo = json!({"id": 1, "prce": 2});
        assert_eq!(body(typo), "prce is not a field of this route");
        for not_obj in [json!([1]), json!("x"), json!(null), json!(1)] {
            assert_eq!(body(not_obj), "body must be a JSON object");
        }
        assert_eq!(body_values(&json!({}), &BodySpec::default()), Ok(vec![]));
        let n = BodySpec {
            fields: vec![("n".into(), Int)],
            read_only: vec![],
        };
        let min = body_values(&json!({"n": i64::MIN}), &n);
        assert_eq!(show(min), "n=Int(-9223372036854775808)");
    }

    #[test]
    fn a_body_may_carry_back_what_the_read_gave() {
        let spec = BodySpec {
            fields: vec![("name".into(), Str)],
            read_only: vec!["updated_at".into()],
        };
        let path = [
            ("id".to_string(), Value::Int(7)),
            ("s".into(), Value::Str("a".into())),
        ];
        let put = |b: serde_json::Value| show(body_values(&b, &spec, &path));
        // The path's values and read-only fields are accepted and not bound.
        let all = json!({"id": 7, "s": "a", "name": "x", "updated_at": "2026-11-01 09:00:00"});
        assert_eq!(put(all), r#"name=Str("x")"#);
        assert_eq!(
            put(json!({"name": "x", "updated_at": null})),
            r#"name=Str("x")"#
        );
        for (k, v, want) in [
            ("id", json!(8), "id does not match the path"),
            ("id", json!("7"), "id does not match the path"),
            ("id", json!(7.5), "id does not match the path"),
            ("id", json!(null), "id does not match the path"),
            ("s", json!("b"), "s does not match the path"),
            ("stock", json!(1), "stock is not a field of this route"),
        ] {
            assert_eq!(put(json!({"name": "x", k: v})), want, "{k}={v}");
        }
    }

    #[test]
    fn tag_templates() {
        let v = [
            ("id", Value::Int(7)),
            ("name", Value::Str("a:b".into())),
            ("x", Value::Null),
        ];
        let v: Vec<(String, Value)> = v.map(|(k, v)| (k.into(), v)).into();
        for (tpl, want) in [
            ("product:{id}", "product:7"),
            ("{name}/{id}/{id}{x}", "a:b/7/7null"),
            ("é-{id}-ü", "é-7-ü"),
            ("all-products", "all-products"),
            ("", ""),
        ] {
            assert_eq!(render_template(tpl, &v).as_deref(), Ok(want), "{tpl}");
        }
        let unknown = render_template("p:{nope}", &v).unwrap_err();
        assert_eq!(unknown, "unknown parameter `nope` in template `p:{nope}`");
        let names = template_names("é:{b}:{a}:{b}").unwrap();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(template_names("plain"), Ok(vec![]));
        for bad in ["p:{id", "p:id}", "p:{}", "p:{a b}", "p:{{id}}", "{é}", "}{"] {
            assert!(template_names(bad).is_err(), "{bad}");
            assert!(render_template(bad, &v).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_panics_on_short_inputs() {
        let tpl = PathTemplate::parse("/a/{i:int}/{s}").unwrap();
        let mut inputs = vec![String::new()];
        for _ in 0..5 {
            let longer = inputs
                .iter()
                .flat_map(|s| "/%{}:aF1é".chars().map(move |c| format!("{s}{c}")));
            inputs = longer.collect();
            for s in &inputs {
                let _ = (tpl.matches(s), PathTemplate::parse(s), template_names(s));
            }
        }
    }
}
