//! The syntax tree of a filter expression, and its printer.
//!
//! Printing an [`Expr`] yields text that parses back to an equal tree: the
//! property tests rely on it, and callers may use it to normalise rules.

use std::fmt;

/// A byte offset into the source text. Offsets are carried for error messages
/// only and never take part in equality, so a printed and re-parsed tree
/// compares equal to the original.
#[derive(Debug, Clone, Copy, Default, Eq)]
pub struct Pos(pub usize);

impl PartialEq for Pos {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// A comparison operator. The `Any*` forms are the `?`-prefixed operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    NotLike,
    AnyEq,
    AnyNeq,
    AnyGt,
    AnyGte,
    AnyLt,
    AnyLte,
    AnyLike,
    AnyNotLike,
}

impl Op {
    /// Every operator, in a fixed order (used by tests and generators).
    pub const ALL: [Op; 16] = [
        Op::Eq,
        Op::Neq,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Like,
        Op::NotLike,
        Op::AnyEq,
        Op::AnyNeq,
        Op::AnyGt,
        Op::AnyGte,
        Op::AnyLt,
        Op::AnyLte,
        Op::AnyLike,
        Op::AnyNotLike,
    ];

    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Gt => ">",
            Op::Gte => ">=",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::AnyEq => "?=",
            Op::AnyNeq => "?!=",
            Op::AnyGt => "?>",
            Op::AnyGte => "?>=",
            Op::AnyLt => "?<",
            Op::AnyLte => "?<=",
            Op::AnyLike => "?~",
            Op::AnyNotLike => "?!~",
        }
    }

    /// True for the `?`-prefixed "any of" operators.
    pub fn is_any(self) -> bool {
        matches!(
            self,
            Op::AnyEq
                | Op::AnyNeq
                | Op::AnyGt
                | Op::AnyGte
                | Op::AnyLt
                | Op::AnyLte
                | Op::AnyLike
                | Op::AnyNotLike
        )
    }

    /// The operator without its `?` prefix.
    pub fn base(self) -> Op {
        match self {
            Op::AnyEq => Op::Eq,
            Op::AnyNeq => Op::Neq,
            Op::AnyGt => Op::Gt,
            Op::AnyGte => Op::Gte,
            Op::AnyLt => Op::Lt,
            Op::AnyLte => Op::Lte,
            Op::AnyLike => Op::Like,
            Op::AnyNotLike => Op::NotLike,
            other => other,
        }
    }
}

/// One side of a comparison, or a function argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field path, `@request.*`, `@collection.*`, a macro, or `null`/`true`/`false`.
    Ident { name: String, pos: Pos },
    /// A quoted string, escapes already removed.
    Text { value: String, pos: Pos },
    /// A number literal; PocketBase reads every number as a 64-bit float.
    Number { value: f64, pos: Pos },
    /// `name(arg, ...)`.
    Call {
        name: String,
        args: Vec<Operand>,
        pos: Pos,
    },
}

impl Operand {
    /// Where the operand starts in the source.
    pub fn pos(&self) -> usize {
        match self {
            Operand::Ident { pos, .. }
            | Operand::Text { pos, .. }
            | Operand::Number { pos, .. }
            | Operand::Call { pos, .. } => pos.0,
        }
    }
}

/// A filter expression. `And`/`Or` always hold two or more items.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp {
        left: Operand,
        op: Op,
        right: Operand,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Visits every comparison in source order.
    pub fn for_each_cmp<'a>(&'a self, f: &mut impl FnMut(&'a Operand, Op, &'a Operand)) {
        match self {
            Expr::Cmp { left, op, right } => f(left, *op, right),
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    item.for_each_cmp(f);
                }
            }
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Ident { name, .. } => f.write_str(name),
            Operand::Text { value, .. } => {
                // Double quotes, escaping what the lexer unescapes: backslash and
                // the quote always, newline, carriage return and tab for
                // readability (raw they would parse back the same).
                f.write_str("\"")?;
                let mut run = 0;
                for (i, c) in value.char_indices() {
                    let escaped = match c {
                        '\\' => "\\\\",
                        '"' => "\\\"",
                        '\n' => "\\n",
                        '\r' => "\\r",
                        '\t' => "\\t",
                        _ => continue,
                    };
                    f.write_str(&value[run..i])?;
                    f.write_str(escaped)?;
                    run = i + 1;
                }
                f.write_str(&value[run..])?;
                f.write_str("\"")
            }
            Operand::Number { value, .. } => write!(f, "{value}"),
            Operand::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Cmp { left, op, right } => write!(f, "{left} {} {right}", op.as_str()),
            // `&&` binds tighter than `||`, so an `And` inside an `Or` needs no
            // parentheses; everything else nested does, which keeps the tree shape.
            Expr::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    match item {
                        Expr::Or(_) => write!(f, "({item})")?,
                        _ => write!(f, "{item}")?,
                    }
                }
                Ok(())
            }
            Expr::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    match item {
                        Expr::Cmp { .. } => write!(f, "{item}")?,
                        _ => write!(f, "({item})")?,
                    }
                }
                Ok(())
            }
        }
    }
}
