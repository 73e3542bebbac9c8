//! Tokenizer for CSL (see `grammar.ebnf` at the crate root).

/// A token kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// identifier or keyword
    Ident(String),
    /// `@name`
    Builtin(String),
    /// integer literal
    Int(i128),
    /// float literal
    Float(f64),
    /// string literal (unescaped)
    Str(String),
    /// character literal
    Char(u32),
    /// punctuation / operator
    P(&'static str),
    /// end of input
    Eof,
}

/// A token with its 1-based line.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// kind
    pub tok: Tok,
    /// line number
    pub line: usize,
}

const PUNCT: [&str; 52] = [
    "<<=", ">>=", "...", "**", "==", "!=", "<=", ">=", "<<", ">>", "+=", "-=", "*=", "/=", "%=",
    "&=", "|=", "^=", "=>", "->", "..", ".*", "++", "+%", "-%", "*%", "||", "(", ")", "{", "}",
    "[", "]", ",", ";", ":", ".", "=", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~",
    "?", "#",
];

/// Splits `src` into tokens; the error names the line.
pub fn lex(src: &str) -> Result<Vec<Token>, String> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c == b'@' {
            i += 1;
            if b.get(i) == Some(&b'"') {
                // @"identifier"
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
                Tok::Ident(src[start + 2..i - 1].to_string())
            } else {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Tok::Builtin(src[start + 1..i].to_string())
            }
        } else if c.is_ascii_digit() {
            number(src, &mut i).map_err(|e| format!("line {line}: {e}"))?
        } else if c == b'"' {
            i += 1;
            let mut s = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    s.push(match b[i] {
                        b'n' => '\n',
                        b't' => '\t',
                        other => other as char,
                    });
                } else {
                    if b[i] == b'\n' {
                        return Err(format!("line {line}: unterminated string"));
                    }
                    s.push(b[i] as char);
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(format!("line {line}: unterminated string"));
            }
            i += 1;
            Tok::Str(s)
        } else if c == b'\'' {
            i += 1;
            let v = if b.get(i) == Some(&b'\\') {
                i += 1;
                match b.get(i) {
                    Some(b'n') => 10,
                    Some(b't') => 9,
                    Some(&o) => u32::from(o),
                    None => 0,
                }
            } else {
                b.get(i).map_or(0, |&o| u32::from(o))
            };
            i += 1;
            if b.get(i) != Some(&b'\'') {
                return Err(format!("line {line}: bad character literal"));
            }
            i += 1;
            Tok::Char(v)
        } else {
            let Some(p) = PUNCT.iter().find(|p| src[i..].starts_with(**p)) else {
                return Err(format!("line {line}: unexpected character {:?}", c as char));
            };
            i += p.len();
            Tok::P(p)
        };
        out.push(Token { tok, line });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
    });
    Ok(out)
}

fn number(src: &str, i: &mut usize) -> Result<Tok, String> {
    let b = src.as_bytes();
    let start = *i;
    let radix = if b[*i] == b'0' && matches!(b.get(*i + 1), Some(b'x' | b'b' | b'o')) {
        *i += 2;
        match b[*i - 1] {
            b'x' => 16,
            b'b' => 2,
            _ => 8,
        }
    } else {
        10
    };
    let digits_start = *i;
    let mut float = false;
    while *i < b.len() {
        let c = b[*i];
        let ok = c.is_ascii_hexdigit() && (radix == 16 || c.is_ascii_digit())
            || c == b'_'
            || (radix == 10 && (c == b'e' || c == b'E'));
        if ok {
            if radix == 10 && (c == b'e' || c == b'E') {
                float = true;
                if matches!(b.get(*i + 1), Some(b'+' | b'-')) {
                    *i += 1;
                }
            }
            *i += 1;
        } else if c == b'.' && radix == 10 && b.get(*i + 1).is_some_and(|d| d.is_ascii_digit()) {
            float = true;
            *i += 1;
        } else {
            break;
        }
    }
    let text: String = src[digits_start..*i]
        .chars()
        .filter(|&c| c != '_')
        .collect();
    if float {
        text.parse::<f64>()
            .map(Tok::Float)
            .map_err(|_| format!("bad number {}", &src[start..*i]))
    } else {
        i128::from_str_radix(&text, radix)
            .map(Tok::Int)
            .map_err(|_| format!("bad number {}", &src[start..*i]))
    }
}
