//! The census: which names of `pg_catalog` the SQL that rds-pg really sends as master resolves,
//! read from the sandbox's statement log. The planted set is generated from it, so it keeps up
//! with the code.
//!
//! The extractor is a small SQL lexer, not a parser: it errs on the side of finding too many
//! names (each candidate is then checked against `pg_catalog`, so a word that is not a catalog
//! function, operator, relation or type is dropped). What it must not do is miss a name the
//! server resolves by search path: function calls (also `pg_catalog.`-qualified ones, which are
//! shadowed all the same so the suite keeps checking that they stay qualified), operators (also
//! the ones the grammar implies: `LIKE` is `~~`, `IN (…)` and `IS DISTINCT FROM` are `=`,
//! `BETWEEN` is `>=` and `<=`), the generic type names after `::` and relation names.

use std::collections::BTreeSet;
use std::fmt;

use postgres::Client;

use super::log::LogEntry;

/// Candidate names found in SQL text, before they are checked against `pg_catalog`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Words directly followed by `(`: function and aggregate calls.
    pub calls: BTreeSet<String>,
    /// Operator symbols, written or implied by the grammar.
    pub operators: BTreeSet<String>,
    /// Type names after `::` that the server looks up by search path (not the SQL-standard
    /// spellings such as `integer`, which the grammar maps to `pg_catalog` itself).
    pub types: BTreeSet<String>,
    /// Other words that may name a relation (`pg_roles`, `pg_class`, …).
    pub words: BTreeSet<String>,
}

/// The names of `pg_catalog` that master's statements resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Plain functions (`prokind = 'f'`).
    pub functions: BTreeSet<String>,
    /// Aggregates (`prokind = 'a'`).
    pub aggregates: BTreeSet<String>,
    /// Operators.
    pub operators: BTreeSet<String>,
    /// Relations (tables and views).
    pub relations: BTreeSet<String>,
    /// Base types named by their generic name.
    pub types: BTreeSet<String>,
    /// How many statements were read.
    pub statements: usize,
}

impl Census {
    /// Functions, aggregates and operators together: the names resolved by argument types.
    pub fn routine_count(&self) -> usize {
        self.functions.len() + self.aggregates.len() + self.operators.len()
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" ");
        writeln!(f, "{} statements of master read", self.statements)?;
        writeln!(
            f,
            "  functions ({}): {}",
            self.functions.len(),
            list(&self.functions)
        )?;
        writeln!(
            f,
            "  aggregates ({}): {}",
            self.aggregates.len(),
            list(&self.aggregates)
        )?;
        writeln!(
            f,
            "  operators ({}): {}",
            self.operators.len(),
            list(&self.operators)
        )?;
        writeln!(
            f,
            "  relations ({}): {}",
            self.relations.len(),
            list(&self.relations)
        )?;
        write!(f, "  types ({}): {}", self.types.len(), list(&self.types))
    }
}

/// Runs the census over the statements `user` sent (the log entries given), resolving the
/// candidates in `pg_catalog` over `catalog` (a pinned session).
pub fn census(catalog: &mut Client, entries: &[LogEntry], user: &str) -> Census {
    let mut candidates = Candidates::default();
    let mut statements = 0;
    for e in entries.iter().filter(|e| e.user == user) {
        if let Some(sql) = e.statement() {
            statements += 1;
            extract(sql, &mut candidates);
        }
    }
    let mut census = resolve(catalog, &candidates);
    census.statements = statements;
    census
}

/// Keeps the candidates that name something in `pg_catalog`.
pub fn resolve(catalog: &mut Client, c: &Candidates) -> Census {
    let strings = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<String>>();
    let calls = strings(&c.calls);
    let words = strings(&c.words);
    let types = strings(&c.types);
    let operators = strings(&c.operators);
    let mut names = |sql: &str, list: &Vec<String>| -> BTreeSet<String> {
        catalog
            .query(sql, &[list])
            .expect("census query")
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let functions = names(
        "SELECT DISTINCT proname::text FROM pg_proc
          WHERE pronamespace = 'pg_catalog'::regnamespace AND prokind = 'f'
            AND proname::text = ANY($1)",
        &calls,
    );
    let aggregates = names(
        "SELECT DISTINCT proname::text FROM pg_proc
          WHERE pronamespace = 'pg_catalog'::regnamespace AND prokind = 'a'
            AND proname::text = ANY($1)",
        &calls,
    );
    let operators = names(
        "SELECT DISTINCT oprname::text FROM pg_operator
          WHERE oprnamespace = 'pg_catalog'::regnamespace AND oprname::text = ANY($1)",
        &operators,
    );
    let relations = names(
        "SELECT DISTINCT relname::text FROM pg_class
          WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind IN ('r', 'v')
            AND relname::text = ANY($1)",
        &words,
    );
    let types = names(
        "SELECT DISTINCT typname::text FROM pg_type
          WHERE typnamespace = 'pg_catalog'::regnamespace AND typtype = 'b'
            AND typname::text = ANY($1)",
        &types,
    );
    Census {
        functions,
        aggregates,
        operators,
        relations,
        types,
        statements: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// The lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword: unquoted ones lower-cased, quoted ones as written.
    Word { text: String, quoted: bool },
    /// An operator symbol.
    Op(String),
    /// `::`.
    Cast,
    /// `(`, `)`, `[`, `]`, `,`, `;`, `.`, `:`.
    Punct(char),
    /// A string, number or `$n` parameter.
    Value,
}

const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

fn lex(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let n = chars.len();
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && i + 1 < n && chars[i + 1] == '-' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && i + 1 < n && chars[i + 1] == '*' {
            let mut depth = 0;
            while i < n {
                if chars[i] == '/' && i + 1 < n && chars[i + 1] == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && i + 1 < n && chars[i + 1] == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' {
            i = skip_string(&chars, i, false);
            tokens.push(Token::Value);
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            while i < n {
                if chars[i] == '"' {
                    if i + 1 < n && chars[i + 1] == '"' {
                        text.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            tokens.push(Token::Word { text, quoted: true });
        } else if c == '$' {
            // $1 (a parameter) or $tag$ … $tag$ (a dollar-quoted string).
            let mut j = i + 1;
            if j < n && chars[j].is_ascii_digit() {
                while j < n && chars[j].is_ascii_digit() {
                    j += 1;
                }
                tokens.push(Token::Value);
                i = j;
                continue;
            }
            while j < n && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j < n && chars[j] == '$' {
                let tag: String = chars[i..=j].iter().collect();
                let tag: Vec<char> = tag.chars().collect();
                let mut k = j + 1;
                while k + tag.len() <= n && chars[k..k + tag.len()] != tag[..] {
                    k += 1;
                }
                i = (k + tag.len()).min(n);
                tokens.push(Token::Value);
            } else {
                i = j.max(i + 1);
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < n && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$') {
                j += 1;
            }
            let text: String = chars[i..j].iter().collect::<String>().to_lowercase();
            // E'…', B'…', X'…', U&'…': a string with a prefix.
            if j < n && chars[j] == '\'' && matches!(text.as_str(), "e" | "b" | "x" | "n") {
                i = skip_string(&chars, j, text == "e");
                tokens.push(Token::Value);
                continue;
            }
            if text == "u" && j + 1 < n && chars[j] == '&' && chars[j + 1] == '\'' {
                i = skip_string(&chars, j + 1, false);
                tokens.push(Token::Value);
                continue;
            }
            tokens.push(Token::Word {
                text,
                quoted: false,
            });
            i = j;
        } else if c.is_ascii_digit() || (c == '.' && i + 1 < n && chars[i + 1].is_ascii_digit()) {
            let mut j = i;
            while j < n && (chars[j].is_ascii_alphanumeric() || chars[j] == '.' || chars[j] == '_')
            {
                // 1e-5: the sign belongs to the number.
                if (chars[j] == 'e' || chars[j] == 'E')
                    && j + 1 < n
                    && (chars[j + 1] == '-' || chars[j + 1] == '+')
                {
                    j += 1;
                }
                j += 1;
            }
            tokens.push(Token::Value);
            i = j;
        } else if c == ':' && i + 1 < n && chars[i + 1] == ':' {
            tokens.push(Token::Cast);
            i += 2;
        } else if OPERATOR_CHARS.contains(c) {
            let mut j = i;
            while j < n && OPERATOR_CHARS.contains(chars[j]) {
                // A comment start ends the operator.
                if j > i
                    && ((chars[j] == '-' && j + 1 < n && chars[j + 1] == '-')
                        || (chars[j] == '/' && j + 1 < n && chars[j + 1] == '*'))
                {
                    break;
                }
                j += 1;
            }
            let mut op: String = chars[i..j].iter().collect();
            // PostgreSQL's rule: a multi-character operator cannot end in + or - unless it
            // holds one of ~ ! @ # % ^ & | ` ?.
            while op.len() > 1
                && (op.ends_with('+') || op.ends_with('-'))
                && !op.chars().any(|c| "~!@#%^&|`?".contains(c))
            {
                op.pop();
            }
            i += op.chars().count();
            if op == "!=" {
                op = "<>".into();
            }
            tokens.push(Token::Op(op));
        } else {
            if "()[],;.:".contains(c) {
                tokens.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    tokens
}

/// The index after the string literal starting at `start` (a `'`).
fn skip_string(chars: &[char], start: usize, backslash_escapes: bool) -> usize {
    let n = chars.len();
    let mut i = start + 1;
    while i < n {
        if backslash_escapes && chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '\'' {
            if i + 1 < n && chars[i + 1] == '\'' {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    n
}

/// Generic type names the grammar maps to `pg_catalog` itself (`integer` → `pg_catalog.int4`):
/// never looked up by search path.
const SQL_STANDARD_TYPES: &[&str] = &[
    "int",
    "integer",
    "smallint",
    "bigint",
    "real",
    "float",
    "double",
    "decimal",
    "dec",
    "numeric",
    "boolean",
    "char",
    "character",
    "varchar",
    "nchar",
    "national",
    "bit",
    "timestamp",
    "time",
    "interval",
];

/// Adds what `sql` uses to `into`.
pub fn extract(sql: &str, into: &mut Candidates) {
    let tokens = lex(sql);
    let word = |i: usize| -> Option<&str> {
        match tokens.get(i) {
            Some(Token::Word { text, .. }) => Some(text.as_str()),
            _ => None,
        }
    };
    let keyword = |i: usize, k: &str| -> bool {
        matches!(tokens.get(i), Some(Token::Word { text, quoted: false }) if text == k)
    };
    let punct = |i: usize, p: char| matches!(tokens.get(i), Some(Token::Punct(c)) if *c == p);
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Word { text, quoted } => {
                // A qualified name: schema . name (or alias . column).
                let (schema, name, last) = if punct(i + 1, '.') && word(i + 2).is_some() {
                    (Some(text.as_str()), word(i + 2).unwrap(), i + 2)
                } else {
                    (None, text.as_str(), i)
                };
                let catalog_or_bare = matches!(schema, None | Some("pg_catalog"));
                let after_cast = i > 0 && tokens[i - 1] == Token::Cast;
                if after_cast {
                    if catalog_or_bare
                        && (schema.is_some() || *quoted || !SQL_STANDARD_TYPES.contains(&name))
                    {
                        into.types.insert(name.to_owned());
                    }
                } else if punct(last + 1, '(') {
                    if catalog_or_bare {
                        into.calls.insert(name.to_owned());
                    }
                } else if catalog_or_bare {
                    into.words.insert(name.to_owned());
                }
                if schema.is_none() && !quoted {
                    implied_operators(&tokens, i, text, into);
                    // CAST(x AS type): a word after AS followed by `)` or `[`.
                    if text == "as"
                        && word(i + 1).is_some()
                        && (punct(i + 2, ')') || punct(i + 2, '['))
                    {
                        let t = word(i + 1).unwrap();
                        if !SQL_STANDARD_TYPES.contains(&t) {
                            into.types.insert(t.to_owned());
                        }
                    }
                    // OPERATOR(schema.op) or OPERATOR(op).
                    if text == "operator" && punct(i + 1, '(') {
                        let at = if word(i + 2).is_some() && punct(i + 3, '.') {
                            i + 4
                        } else {
                            i + 2
                        };
                        if let Some(Token::Op(op)) = tokens.get(at) {
                            into.operators.insert(op.clone());
                        }
                    }
                }
                i = last + 1;
                continue;
            }
            Token::Op(op) => {
                let inside_operator_keyword = i >= 2
                    && (keyword(i - 2, "operator")
                        || (i >= 4 && punct(i - 1, '.') && keyword(i - 4, "operator")));
                // `*` is a wildcard after `(`, `,`, `.` or SELECT.
                let wildcard = op == "*"
                    && (i == 0
                        || punct(i - 1, '(')
                        || punct(i - 1, ',')
                        || punct(i - 1, '.')
                        || keyword(i - 1, "select"));
                if !inside_operator_keyword && !wildcard {
                    into.operators.insert(op.clone());
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Operators the grammar implies for the keyword at `i`.
fn implied_operators(tokens: &[Token], i: usize, text: &str, into: &mut Candidates) {
    let keyword = |j: usize, k: &str| -> bool {
        matches!(tokens.get(j), Some(Token::Word { text, quoted: false }) if text == k)
    };
    let negated = i > 0 && keyword(i - 1, "not");
    let mut add = |op: &str| {
        into.operators.insert(op.to_owned());
    };
    match text {
        "like" => add(if negated { "!~~" } else { "~~" }),
        "ilike" => add(if negated { "!~~*" } else { "~~*" }),
        "in" if matches!(tokens.get(i + 1), Some(Token::Punct('('))) => {
            add(if negated { "<>" } else { "=" })
        }
        "between" => {
            add(">=");
            add("<=");
            add("<");
            add(">");
        }
        // IS [NOT] DISTINCT FROM
        "distinct" if keyword(i + 1, "from") => add("="),
        "nullif" => add("="),
        "similar" if keyword(i + 1, "to") => add("~"),
        // CASE x WHEN …: a simple CASE compares with `=`.
        "case" if !keyword(i + 1, "when") => add("="),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> Candidates {
        let mut c = Candidates::default();
        extract(sql, &mut c);
        c
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn calls_qualified_or_not_and_never_inside_strings_or_comments() {
        let c = run(
            "SELECT pg_catalog.format('%I(x)', n.nspname), count(*), \"quote_ident\"(x) -- f(y)
               FROM pg_namespace n /* g(z) */ WHERE public.mine(1) AND $tag$ h(1) $tag$ <> ''",
        );
        assert_eq!(c.calls, set(&["count", "format", "quote_ident"]));
        assert!(c.words.contains("pg_namespace"));
        assert!(c.operators.contains("<>"));
        assert!(!c.operators.contains("*"), "count(*) is no operator: {c:?}");
    }

    #[test]
    fn operators_written_and_implied() {
        let c = run(
            "SELECT a OPERATOR(pg_catalog.=) b, x->>'k', y || z, 1-1 FROM t
              WHERE r NOT LIKE 'a%' AND s ILIKE 'b' AND k IN (1, 2) AND q IS DISTINCT FROM w
                AND v BETWEEN 1 AND 2 AND o = ANY($1::text[]) AND m != n AND c.oid=-1",
        );
        for op in ["=", "->>", "||", "-", "!~~", "~~*", ">=", "<=", "<>"] {
            assert!(
                c.operators.contains(op),
                "{op} missing from {:?}",
                c.operators
            );
        }
        assert!(!c.operators.contains("!="), "!= is <>");
        assert!(!c.operators.contains("=-"), "=- is = then -");
        assert!(c.types.contains("text"));
    }

    #[test]
    fn types_only_where_looked_up_by_name() {
        let c = run(
            "SELECT $1::int4, $2::integer, $3::pg_catalog.text[], x::regclass, \
             CAST(y AS oid), z::bigint, w::name",
        );
        assert_eq!(c.types, set(&["int4", "name", "oid", "regclass", "text"]));
    }

    #[test]
    fn strings_with_escapes_end_where_they_end() {
        let c = run(r"SELECT E'it\'s f(1)', 'a''b g(2)', U&'d\0061t h(3)', real_call(1)");
        assert_eq!(c.calls, set(&["real_call"]));
    }
}
