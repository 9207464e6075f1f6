//! Lexer and recursive-descent parser for the filter grammar.
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := primary ( "&&" primary )*
//! primary := "(" expr ")" | operand OP operand
//! operand := identifier | text | number | name "(" [ arg ( "," arg )* [","] ] ")"
//! ```
//! Whitespace is space, tab or newline (a carriage return is an error, as in
//! PocketBase); `//` starts a comment that runs to the end of the line.

use crate::ast::{Expr, Op, Operand, Pos};
use crate::error::{Error, Result};

/// Longest accepted source text, in bytes (PocketBase's own bound).
pub const MAX_FILTER_LEN: usize = 3500;
/// Most comparisons one expression may hold.
pub const MAX_COMPARISONS: usize = 200;
/// Deepest parenthesis nesting accepted; bounds the parser's recursion.
pub const MAX_NESTING: usize = 32;
/// Deepest function-call nesting accepted (`f(g(h(x)))` is 3).
pub const MAX_CALL_DEPTH: usize = 3;
/// Most arguments one function call may take.
pub const MAX_CALL_ARGS: usize = 10;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Text(String),
    Number(f64),
    /// An identifier immediately followed by `(`.
    Call(String),
    LParen,
    RParen,
    Comma,
    Op(Op),
    And,
    Or,
    End,
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    at: usize,
}

fn syntax(pos: usize, message: impl Into<String>) -> Error {
    Error::Syntax {
        pos,
        message: message.into(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@' || c == '#'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || c == ':'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            at: 0,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.at..].chars().next()
    }

    fn skip_blank(&mut self) -> Result<()> {
        loop {
            match self.bytes.get(self.at) {
                Some(b' ' | b'\t' | b'\n') => self.at += 1,
                Some(b'\r') => return Err(syntax(self.at, "carriage return is not allowed")),
                Some(b'/') if self.bytes.get(self.at + 1) == Some(&b'/') => {
                    while let Some(&b) = self.bytes.get(self.at) {
                        if b == b'\n' {
                            break;
                        }
                        self.at += 1;
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Returns the next token and the offset it starts at.
    fn next(&mut self) -> Result<(Tok, usize)> {
        self.skip_blank()?;
        let start = self.at;
        let Some(c) = self.peek_char() else {
            return Ok((Tok::End, start));
        };
        let two = |s: &Self, a: u8| s.bytes.get(s.at + 1) == Some(&a);
        let tok = match c {
            '(' => {
                self.at += 1;
                Tok::LParen
            }
            ')' => {
                self.at += 1;
                Tok::RParen
            }
            ',' => {
                self.at += 1;
                Tok::Comma
            }
            '&' if two(self, b'&') => {
                self.at += 2;
                Tok::And
            }
            '|' if two(self, b'|') => {
                self.at += 2;
                Tok::Or
            }
            '=' | '!' | '<' | '>' | '~' | '?' => Tok::Op(self.op()?),
            '\'' | '"' => Tok::Text(self.text(c)?),
            '-' | '0'..='9' => Tok::Number(self.number()?),
            c if is_ident_start(c) => {
                let name = self.ident()?;
                if self.bytes.get(self.at) == Some(&b'(') {
                    self.at += 1;
                    Tok::Call(name)
                } else {
                    Tok::Ident(name)
                }
            }
            other => return Err(syntax(start, format!("unexpected character {other:?}"))),
        };
        Ok((tok, start))
    }

    fn op(&mut self) -> Result<Op> {
        let start = self.at;
        let any = self.bytes[self.at] == b'?';
        if any {
            self.at += 1;
        }
        let b = self.bytes.get(self.at).copied();
        let next = self.bytes.get(self.at + 1).copied();
        let (op, len) = match (b, next) {
            (Some(b'='), _) => (Op::Eq, 1),
            (Some(b'!'), Some(b'=')) => (Op::Neq, 2),
            (Some(b'!'), Some(b'~')) => (Op::NotLike, 2),
            (Some(b'>'), Some(b'=')) => (Op::Gte, 2),
            (Some(b'>'), _) => (Op::Gt, 1),
            (Some(b'<'), Some(b'=')) => (Op::Lte, 2),
            (Some(b'<'), _) => (Op::Lt, 1),
            (Some(b'~'), _) => (Op::Like, 1),
            _ => return Err(syntax(start, "invalid operator")),
        };
        self.at += len;
        // `==` and `=>` are not operators; reject them here rather than letting
        // the second character start a confusing operand error.
        if matches!(
            self.bytes.get(self.at),
            Some(b'=' | b'>' | b'<' | b'!' | b'~' | b'?')
        ) {
            return Err(syntax(start, "invalid operator"));
        }
        Ok(if any {
            match op {
                Op::Eq => Op::AnyEq,
                Op::Neq => Op::AnyNeq,
                Op::Gt => Op::AnyGt,
                Op::Gte => Op::AnyGte,
                Op::Lt => Op::AnyLt,
                Op::Lte => Op::AnyLte,
                Op::Like => Op::AnyLike,
                _ => Op::AnyNotLike,
            }
        } else {
            op
        })
    }

    /// A quoted string, in single or double quotes (the two behave alike).
    ///
    /// Escapes are read left to right in one pass: `\\` is a backslash, `\"`
    /// and `\'` are the quote characters (either one, whichever quote opened
    /// the string), `\n`, `\r` and `\t` are newline, carriage return and tab.
    /// A backslash before any other character is kept as is, together with that
    /// character, so `\d` stays two characters and `\u00e9` stays six. A
    /// backslash cannot end a string: `"a\"` is unterminated. Raw newlines,
    /// tabs and carriage returns between the quotes are kept verbatim.
    fn text(&mut self, quote: char) -> Result<String> {
        let start = self.at;
        let quote = quote as u8;
        let body = self.at + 1;
        let mut out = String::new();
        // Start of the run of source bytes not yet copied to `out`.
        let mut run = body;
        let mut i = body;
        while let Some(&b) = self.bytes.get(i) {
            if b == quote {
                out.push_str(&self.src[run..i]);
                self.at = i + 1;
                return Ok(out);
            }
            if b != b'\\' {
                i += 1;
                continue;
            }
            let unescaped = match self.bytes.get(i + 1) {
                Some(b'\\') => '\\',
                Some(b'"') => '"',
                Some(b'\'') => '\'',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                // Not an escape: the backslash is kept and the character
                // after it is read normally on the next turn.
                _ => {
                    i += 1;
                    continue;
                }
            };
            out.push_str(&self.src[run..i]);
            out.push(unescaped);
            i += 2;
            run = i;
        }
        Err(syntax(start, "unterminated string"))
    }

    fn number(&mut self) -> Result<f64> {
        let start = self.at;
        if self.bytes[self.at] == b'-' {
            self.at += 1;
        }
        let digits_start = self.at;
        let mut dots = 0;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'0'..=b'9' => self.at += 1,
                b'.' => {
                    dots += 1;
                    self.at += 1;
                }
                _ => break,
            }
        }
        let body = &self.src[digits_start..self.at];
        let trailing_ident = self.peek_char().is_some_and(is_ident_continue);
        if body.is_empty()
            || dots > 1
            || body.starts_with('.')
            || body.ends_with('.')
            || trailing_ident
        {
            return Err(syntax(start, "invalid number"));
        }
        self.src[start..self.at]
            .parse::<f64>()
            .map_err(|_| syntax(start, "invalid number"))
    }

    fn ident(&mut self) -> Result<String> {
        let start = self.at;
        let mut end = self.at;
        for (i, c) in self.src[self.at..].char_indices() {
            if i == 0 || is_ident_continue(c) {
                end = self.at + i + c.len_utf8();
            } else {
                break;
            }
        }
        self.at = end;
        let name = &self.src[start..end];
        if name.ends_with('.') || name.ends_with(':') || matches!(name, "@" | "_" | "#") {
            return Err(syntax(start, format!("invalid identifier {name:?}")));
        }
        Ok(name.to_string())
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    pos: usize,
    comparisons: usize,
}

/// Parses a filter. An empty (or blank/comment-only) text yields `None`: no filter.
pub fn parse(src: &str) -> Result<Option<Expr>> {
    if src.len() > MAX_FILTER_LEN {
        return Err(Error::Limit {
            what: "filter length",
            limit: MAX_FILTER_LEN,
        });
    }
    let mut lexer = Lexer::new(src);
    let (tok, pos) = lexer.next()?;
    let mut p = Parser {
        lexer,
        tok,
        pos,
        comparisons: 0,
    };
    if p.tok == Tok::End {
        return Ok(None);
    }
    let expr = p.expr(0)?;
    if p.tok != Tok::End {
        return Err(syntax(p.pos, "unexpected token"));
    }
    Ok(Some(expr))
}

impl Parser<'_> {
    fn bump(&mut self) -> Result<()> {
        let (tok, pos) = self.lexer.next()?;
        self.tok = tok;
        self.pos = pos;
        Ok(())
    }

    fn expr(&mut self, depth: usize) -> Result<Expr> {
        let mut items = vec![self.and(depth)?];
        while self.tok == Tok::Or {
            self.bump()?;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr> {
        let mut items = vec![self.primary(depth)?];
        while self.tok == Tok::And {
            self.bump()?;
            items.push(self.primary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Expr> {
        if self.tok == Tok::LParen {
            if depth >= MAX_NESTING {
                return Err(Error::Limit {
                    what: "parenthesis nesting",
                    limit: MAX_NESTING,
                });
            }
            let open = self.pos;
            self.bump()?;
            let inner = self.expr(depth + 1)?;
            if self.tok != Tok::RParen {
                return Err(syntax(open, "unclosed parenthesis"));
            }
            self.bump()?;
            return Ok(inner);
        }
        let left = self.operand(0)?;
        let Tok::Op(op) = self.tok else {
            return Err(syntax(self.pos, "expected a comparison operator"));
        };
        self.bump()?;
        let right = self.operand(0)?;
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(Error::Limit {
                what: "number of comparisons",
                limit: MAX_COMPARISONS,
            });
        }
        Ok(Expr::Cmp { left, op, right })
    }

    fn operand(&mut self, call_depth: usize) -> Result<Operand> {
        let pos = Pos(self.pos);
        let operand = match std::mem::replace(&mut self.tok, Tok::End) {
            Tok::Ident(name) => Operand::Ident { name, pos },
            Tok::Text(value) => Operand::Text { value, pos },
            Tok::Number(value) => Operand::Number { value, pos },
            Tok::Call(name) => {
                if call_depth >= MAX_CALL_DEPTH {
                    return Err(Error::Limit {
                        what: "function nesting",
                        limit: MAX_CALL_DEPTH,
                    });
                }
                self.bump()?;
                let mut args = Vec::new();
                while self.tok != Tok::RParen {
                    if self.tok == Tok::End {
                        return Err(syntax(pos.0, format!("unclosed call of {name}")));
                    }
                    args.push(self.operand(call_depth + 1)?);
                    if args.len() > MAX_CALL_ARGS {
                        return Err(Error::Limit {
                            what: "function arguments",
                            limit: MAX_CALL_ARGS,
                        });
                    }
                    match self.tok {
                        Tok::Comma => self.bump()?,
                        Tok::RParen => {}
                        _ => return Err(syntax(self.pos, "expected ',' or ')'")),
                    }
                }
                // `self.tok` is the closing parenthesis; the bump below consumes it.
                Operand::Call { name, args, pos }
            }
            other => {
                self.tok = other;
                return Err(syntax(pos.0, "expected an operand"));
            }
        };
        self.bump()?;
        Ok(operand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the single string literal in `src`.
    fn lit(src: &str) -> Result<String> {
        let mut lexer = Lexer::new(src);
        match lexer.next()? {
            (Tok::Text(s), _) => {
                assert_eq!(lexer.next()?.0, Tok::End, "{src:?}: trailing input");
                Ok(s)
            }
            (other, _) => panic!("{src:?}: {other:?}"),
        }
    }

    #[test]
    fn string_escapes_follow_pocketbase() {
        for q in ['"', '\''] {
            let s = |body: &str| format!("{q}{body}{q}");
            // Recognised escapes.
            assert_eq!(lit(&s(r"back\\slash")).unwrap(), r"back\slash");
            assert_eq!(lit(&s(r"a\nb")).unwrap(), "a\nb");
            assert_eq!(lit(&s(r"a\rb")).unwrap(), "a\rb");
            assert_eq!(lit(&s(r"a\tb")).unwrap(), "a\tb");
            assert_eq!(lit(&s(r#"q\"d"#)).unwrap(), "q\"d");
            assert_eq!(lit(&s(r"q\'d")).unwrap(), "q'd");
            assert_eq!(lit(&s(r"end\\")).unwrap(), "end\\");
            assert_eq!(lit(&s(r"\\")).unwrap(), "\\");
            assert_eq!(lit(&s(r"\\\\")).unwrap(), r"\\");
            // One pass, left to right.
            assert_eq!(lit(&s(r"\\n")).unwrap(), r"\n");
            assert_eq!(lit(&s(r"\\\n")).unwrap(), "\\\n");
            assert_eq!(lit(&s(r"x\\\y")).unwrap(), r"x\\y");
            assert_eq!(lit(&s(r#"a\\\"b"#)).unwrap(), r#"a\"b"#);
            // Anything else keeps its backslash.
            for kept in [
                r"\d", r"\u00e9", r"\b", r"\f", r"\v", r"\0", r"\/", r"\x41", r"\%", r"\_", r"\é",
                r"\✓",
            ] {
                assert_eq!(lit(&s(kept)).unwrap(), kept, "{kept}");
            }
            assert_eq!(lit(&s("x\\\ny")).unwrap(), "x\\\ny");
            assert_eq!(lit(&s("x\\\ty")).unwrap(), "x\\\ty");
            // Raw control characters inside the quotes are kept.
            assert_eq!(lit(&s("a\nb\rc\td")).unwrap(), "a\nb\rc\td");
            // A trailing backslash escapes the closing quote.
            for open in [r"end\", r"\", r"a\\\"] {
                assert!(
                    matches!(lit(&s(open)), Err(Error::Syntax { pos: 0, .. })),
                    "{open}"
                );
            }
        }
        // The other quote needs no escape.
        assert_eq!(lit(r#"'a"b'"#).unwrap(), "a\"b");
        assert_eq!(lit(r#""a'b""#).unwrap(), "a'b");
    }

    #[test]
    fn strings_end_at_the_right_quote() {
        let e = parse(r#"a = "x\\" && b = 'y\\'"#).unwrap().unwrap();
        let Expr::And(items) = e else { panic!() };
        let values: Vec<_> = items
            .iter()
            .map(|c| match c {
                Expr::Cmp {
                    right: Operand::Text { value, .. },
                    ..
                } => value.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, [r"x\", r"y\"]);
    }

    #[test]
    fn printed_strings_parse_back() {
        for value in [
            r"back\slash",
            "a\nb\r\t",
            r#"q"d'"#,
            r"end\",
            r"\",
            r"\\n",
            r"\u00e9",
            "é✓",
            "",
        ] {
            let e = Expr::Cmp {
                left: Operand::Ident {
                    name: "a".into(),
                    pos: Pos(0),
                },
                op: Op::Eq,
                right: Operand::Text {
                    value: value.into(),
                    pos: Pos(0),
                },
            };
            let text = e.to_string();
            assert_eq!(parse(&text).unwrap(), Some(e), "{text}");
        }
    }
}
