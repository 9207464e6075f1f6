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

    /// A quoted string. The only escape is a backslash before the quote
    /// character that opened the string; every other backslash is literal.
    fn text(&mut self, quote: char) -> Result<String> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.src[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' && self.src[self.at + i + 1..].starts_with(quote) {
                out.push(quote);
                chars.next();
                continue;
            }
            if c == quote {
                self.at += i + 1;
                return Ok(out);
            }
            out.push(c);
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
