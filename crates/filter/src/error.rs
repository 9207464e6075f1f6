//! The crate's error type. Every variant that stems from user input names the
//! offending token and its byte offset in the source text, so the API layer can
//! hand a precise message back in PocketBase's error envelope.

/// Everything that can go wrong while parsing, resolving, compiling or evaluating.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The text is not a well-formed expression.
    #[error("syntax error at position {pos}: {message}")]
    Syntax { pos: usize, message: String },
    /// A size or complexity bound was exceeded (length, nesting, joins, ...).
    #[error("{what} exceeds the limit of {limit}")]
    Limit { what: &'static str, limit: usize },
    /// An identifier names no field, collection or request value the schema knows.
    #[error("unknown field {token:?} at position {pos}: {reason}")]
    UnknownField {
        token: String,
        pos: usize,
        reason: String,
    },
    /// A field may not be used here: hidden field, wrong modifier, bad path shape.
    #[error("invalid field {token:?} at position {pos}: {reason}")]
    InvalidField {
        token: String,
        pos: usize,
        reason: String,
    },
    /// A function call with an unknown name or wrong arguments.
    #[error("invalid function {token:?} at position {pos}: {reason}")]
    InvalidFunction {
        token: String,
        pos: usize,
        reason: String,
    },
    /// Only superusers may use this construct in a client filter or sort.
    #[error("only superusers can filter by {0}")]
    SuperuserOnly(&'static str),
    /// The base collection of a query does not exist.
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    /// A `sort` item is not sortable.
    #[error("invalid sort field {0:?}")]
    InvalidSort(String),
    /// A `fields` or `expand` parameter is malformed.
    #[error("invalid {param} parameter: {reason}")]
    InvalidParam { param: &'static str, reason: String },
    /// The compiled rule reaches other rows (relations, back-relations,
    /// `@collection`, auth-collection joins) or uses a SQL-only function, so it
    /// must run in SQLite.
    #[error("the expression cannot be evaluated in memory: {0}")]
    NeedsSql(&'static str),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
