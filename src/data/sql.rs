//! Config SQL statements: `:name` parameters rewritten to SQLite (`?N`) and PostgreSQL (`$N`)
//! placeholders, so request values are always bound and never spliced into SQL text.
//!
//! The scanner knows just enough SQL lexing (strings, quoted identifiers, comments) to never
//! mistake text for a parameter. Constructs on which the two backends disagree are rejected
//! rather than guessed at, because a guess means a silently unbound (NULL) parameter.

/// A config SQL statement, with its named parameters resolved to positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// For SQLite: `:name` replaced by `?N` (1-based, one number per distinct name).
    pub(crate) sqlite: String,
    /// For PostgreSQL: `:name` replaced by `$N`.
    pub(crate) postgres: String,
    /// Distinct parameter names in bind order (index 0 binds ?1 / $1).
    pub(crate) params: Vec<String>,
}

/// Parses one SQL statement with `:name` parameters.
///
/// Text in strings, quoted identifiers and comments is copied unchanged; `::` (a PostgreSQL
/// cast) is never a parameter. A trailing `;` and anything after it (whitespace, comments) is
/// dropped, so each backend receives exactly one statement.
pub fn parse(sql: &str) -> Result<Statement, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut st = Statement {
        sqlite: String::new(),
        postgres: String::new(),
        params: Vec::new(),
    };
    let mut has_code = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p]);
        if let Some(end) = comment_end(&chars, i)? {
            push(&mut st, &chars[i..end]);
            i = end;
            continue;
        }
        let end = match c {
            '\'' | '"' | '`' => {
                // PostgreSQL E'...' strings allow backslash escapes (`E'it\'s'`).
                let e_string = c == '\''
                    && matches!(prev, Some('E' | 'e'))
                    && (i < 2 || !is_ident_char(chars[i - 2]));
                quoted_end(&chars, i, e_string)?
            }
            ':' if prev != Some(':')
                && chars
                    .get(i + 1)
                    .is_some_and(|&n| n.is_alphabetic() || n == '_') =>
            {
                let name: String = (chars[i + 1..].iter())
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                let end = i + 1 + name.len();
                // SQLite would read `:idé` as one name, and `?1é` as `?1 AS é`.
                if name.is_empty() || chars.get(end).is_some_and(|&n| is_ident_char(n)) {
                    return Err("parameter names may only use ASCII letters, digits and _".into());
                }
                let n = match st.params.iter().position(|p| *p == name) {
                    Some(pos) => pos + 1,
                    None => {
                        st.params.push(name);
                        st.params.len()
                    }
                };
                st.sqlite.push_str(&format!("?{n}"));
                st.postgres.push_str(&format!("${n}"));
                has_code = true;
                i = end;
                continue;
            }
            '?' => return Err("positional placeholder `?`: use :name parameters".into()),
            // `$` inside an identifier (`a$1`) is part of it in both backends.
            '$' if !in_identifier(&chars, i) => {
                return Err(if chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    "positional placeholder `$N`: use :name parameters".into()
                } else {
                    "`$` (dollar quoting or $name) is not supported: use :name parameters".into()
                });
            }
            ';' => {
                let mut j = i + 1;
                while j < chars.len() {
                    if chars[j].is_whitespace() {
                        j += 1;
                    } else if let Some(end) = comment_end(&chars, j)? {
                        j = end;
                    } else {
                        return Err("more than one statement".into());
                    }
                }
                break;
            }
            _ => i + 1,
        };
        has_code |= !c.is_whitespace();
        push(&mut st, &chars[i..end]);
        i = end;
    }
    if !has_code {
        return Err("empty statement".into());
    }
    Ok(st)
}

/// Copies source text verbatim into both outputs.
fn push(st: &mut Statement, text: &[char]) {
    st.sqlite.extend(text);
    st.postgres.extend(text);
}

/// Whether `i` continues an identifier (so a `$` there is not a placeholder); `1$1` is a
/// number then `$1`.
fn in_identifier(chars: &[char], i: usize) -> bool {
    let start = chars[..i]
        .iter()
        .rposition(|&c| !is_ident_char(c))
        .map_or(0, |p| p + 1);
    start < i && !chars[start].is_ascii_digit()
}

/// Characters that continue an identifier in SQLite or PostgreSQL.
fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// If a comment starts at `i`, the index just past it.
fn comment_end(chars: &[char], i: usize) -> Result<Option<usize>, String> {
    match (chars[i], chars.get(i + 1)) {
        ('-', Some('-')) => {
            let nl = chars[i..].iter().position(|&c| c == '\n');
            Ok(Some(nl.map_or(chars.len(), |p| i + p + 1)))
        }
        ('/', Some('*')) => {
            let mut j = i + 2;
            while j + 1 < chars.len() {
                match (chars[j], chars[j + 1]) {
                    ('*', '/') => return Ok(Some(j + 2)),
                    // PostgreSQL nests block comments, SQLite does not: refuse to pick one.
                    ('/', '*') => return Err("nested block comments are not supported".into()),
                    _ => j += 1,
                }
            }
            Err("unterminated block comment".into())
        }
        _ => Ok(None),
    }
}

/// The index just past the quoted string or identifier starting at `i` (doubled quotes escape).
fn quoted_end(chars: &[char], i: usize, backslash_escapes: bool) -> Result<usize, String> {
    let quote = chars[i];
    let mut j = i + 1;
    loop {
        match chars.get(j) {
            None if quote == '\'' => return Err("unterminated string literal".into()),
            None => return Err("unterminated quoted identifier".into()),
            Some('\\') if backslash_escapes => j += 2,
            Some(&c) if c == quote && chars.get(j + 1) == Some(&quote) => j += 2,
            Some(&c) if c == quote => return Ok(j + 1),
            Some(_) => j += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> Statement {
        parse(sql).unwrap_or_else(|e| panic!("{sql:?}: {e}"))
    }

    fn err(sql: &str) -> String {
        parse(sql).expect_err(sql)
    }

    #[test]
    fn numbers_distinct_names_and_reuses_repeats() {
        let st = ok("SELECT * FROM t WHERE a = :a AND b = :b_2 OR a2 = :a");
        assert_eq!(
            st.sqlite,
            "SELECT * FROM t WHERE a = ?1 AND b = ?2 OR a2 = ?1"
        );
        assert_eq!(
            st.postgres,
            "SELECT * FROM t WHERE a = $1 AND b = $2 OR a2 = $1"
        );
        assert_eq!(st.params, ["a", "b_2"]);
    }

    #[test]
    fn no_parameters() {
        let st = ok("SELECT 1");
        assert_eq!(
            (st.sqlite.as_str(), st.postgres.as_str()),
            ("SELECT 1", "SELECT 1")
        );
        assert!(st.params.is_empty());
    }

    #[test]
    fn parameter_edges() {
        let st = ok(":_x,:x1)");
        assert_eq!(
            (st.sqlite.as_str(), st.params.clone()),
            ("?1,?2)", vec!["_x".into(), "x1".into()])
        );
        assert_eq!(ok("(:id)").postgres, "($1)");
        assert_eq!(ok("a=:id\n").sqlite, "a=?1\n");
        assert_eq!(
            ok("f(x, :a, :b, :c, :d, :e, :f, :g, :h, :i, :j)").postgres,
            "f(x, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
    }

    #[test]
    fn casts_and_lone_colons_are_not_parameters() {
        let st = ok("SELECT :v::int, x::text, a[1:2], '1'::date, y :::z");
        assert_eq!(
            st.postgres,
            "SELECT $1::int, x::text, a[1:2], '1'::date, y :::z"
        );
        assert_eq!(st.params, ["v"]);
        assert_eq!(ok("SELECT : a, x:").sqlite, "SELECT : a, x:");
    }

    #[test]
    fn strings_identifiers_and_comments_are_opaque() {
        let sql = "SELECT ':a ? $1', 'it''s :b', \"col:c?\", `d:e`, E'x\\':f' -- :g ? $1\n\
                   /* :h ? ' \" */ FROM t WHERE k = :k";
        let st = ok(sql);
        assert_eq!(st.params, ["k"]);
        assert_eq!(st.sqlite, sql.replace(":k", "?1"));
        assert_eq!(st.postgres, sql.replace(":k", "$1"));
        assert_eq!(ok("SELECT \"a\"\"b:c\", :d").params, ["d"]);
        assert_eq!(ok("SELECT 1 -- trailing :x").params, Vec::<String>::new());
        assert_eq!(ok("SELECT /**/ :a /*/ :b */").params, ["a"]);
    }

    #[test]
    fn e_string_needs_a_standalone_e() {
        // `type'...'` is not an E-string, so the backslash does not escape the quote.
        assert_eq!(ok("SELECT typE'a\\', :x").params, ["x"]);
        assert_eq!(err("SELECT E'a\\'"), "unterminated string literal");
    }

    #[test]
    fn unicode_is_copied() {
        let sql = "SELECT 'héllo 🚀', \"naïve\" /* ü */ FROM t WHERE x = :x -- é";
        assert_eq!(ok(sql).sqlite, sql.replace(":x", "?1"));
        let ascii_only = "parameter names may only use ASCII letters, digits and _";
        for sql in ["SELECT :idé", "SELECT :é", "SELECT :id$", "SELECT :_é"] {
            assert_eq!(err(sql), ascii_only, "{sql}");
        }
    }

    #[test]
    fn never_panics_on_short_inputs() {
        let alphabet: Vec<char> = ":'\"`-/*;$?\\Ee1_aé🚀 \n".chars().collect();
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let longer = inputs
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")));
            inputs = longer.collect();
            for sql in &inputs {
                let _ = parse(sql);
            }
        }
    }

    #[test]
    fn positional_placeholders_are_rejected() {
        for sql in ["SELECT ?", "SELECT ?1", "SELECT $1", "SELECT data ? 'k'"] {
            assert!(err(sql).contains("use :name parameters"), "{sql}");
        }
        assert!(err("SELECT $$x$$").contains("dollar"));
        assert!(err("SELECT $a").contains("use :name"));
        // `$` continuing an identifier is not a placeholder.
        let st = ok("SELECT a$1, b$c, é$1, a1$2 FROM t");
        assert!(st.params.is_empty());
        assert!(err("SELECT 1$1").contains("use :name parameters"));
        assert!(err("SELECT 1 + $1").contains("use :name parameters"));
    }

    #[test]
    fn unterminated_constructs() {
        assert_eq!(err("SELECT 'abc"), "unterminated string literal");
        assert_eq!(err("SELECT 'it''"), "unterminated string literal");
        assert_eq!(err("SELECT \"abc"), "unterminated quoted identifier");
        assert_eq!(err("SELECT `abc"), "unterminated quoted identifier");
        assert_eq!(err("SELECT /* abc"), "unterminated block comment");
        assert_eq!(err("SELECT /*/"), "unterminated block comment");
        assert_eq!(err("SELECT 1; /* x"), "unterminated block comment");
        assert_eq!(
            err("/* a /* b */ */ SELECT 1"),
            "nested block comments are not supported"
        );
    }

    #[test]
    fn empty_statements() {
        for sql in [
            "",
            "   \n\t",
            "-- only a comment",
            "/* c */ -- d",
            ";",
            "  ; -- x",
        ] {
            assert_eq!(err(sql), "empty statement", "{sql:?}");
        }
    }

    #[test]
    fn single_statement_with_optional_terminator() {
        assert_eq!(ok("SELECT :a;").sqlite, "SELECT ?1");
        assert_eq!(ok("SELECT 1 ; \n -- done\n /* x */ ").postgres, "SELECT 1 ");
        assert_eq!(ok("SELECT ';', \";\" -- ;\n").params, Vec::<String>::new());
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT 1;;",
            "SELECT 1; -- c\n DROP TABLE t",
            "SELECT 1;/**/x",
        ] {
            assert_eq!(err(sql), "more than one statement", "{sql:?}");
        }
    }
}
