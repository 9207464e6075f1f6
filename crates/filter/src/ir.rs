//! The compiled form of an expression: a small SQL expression tree that is both
//! rendered to SQLite text and evaluated in memory.
//!
//! Keeping one tree for both is what makes the evaluator agree with SQLite: the
//! PocketBase-specific decisions (NULL fallbacks, LIKE wrapping, "all"
//! sub-queries) are taken once, by the compiler, and the two back ends only
//! implement plain SQL semantics.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::FieldInfo;
use crate::value::{
    Affinity, SqlValue, Val, column_val, compare, field_affinity, json_scalar, like,
    numeric_affinity, with_affinity,
};

pub(crate) type AliasId = usize;

/// A literal spliced into SQL text. Only constants, never user data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    EmptyText,
    Int(i64),
    True,
    False,
}

/// A bound parameter. `Bool` is kept apart from `Int` because LIKE patterns
/// are built from the parameter's text, which is `true` for a bool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
}

impl Param {
    fn to_sql(&self) -> SqlValue {
        match self {
            Param::Bool(b) => SqlValue::Integer(i64::from(*b)),
            Param::Int(i) => SqlValue::Integer(*i),
            Param::Real(f) => SqlValue::Real(*f),
            Param::Text(s) => SqlValue::Text(s.clone()),
        }
    }

    fn val(&self) -> Val<'_> {
        match self {
            Param::Bool(b) => Val::Int(i64::from(*b)),
            Param::Int(i) => Val::Int(*i),
            Param::Real(f) => Val::Real(*f),
            Param::Text(s) => Val::Text(Cow::Borrowed(s)),
        }
    }

    /// Empty in PocketBase's sense: NULL or `''`.
    pub fn is_empty(&self) -> bool {
        matches!(self, Param::Text(s) if s.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CmpOp {
    Eq,
    Is,
    IsNot,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Is => "IS",
            CmpOp::IsNot => "IS NOT",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

/// A step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathSeg {
    Key(String),
    Index(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Col {
        alias: AliasId,
        field: Box<FieldInfo>,
    },
    /// `alias._rowid_` (sort only).
    RowId(AliasId),
    /// `alias.value` of a `json_each` join.
    JeValue(AliasId),
    /// `alias.multiMatchValue` of a multi-match sub-query.
    MmValue(AliasId, Affinity),
    Param(Param),
    Lit(Lit),
    JsonExtract(Box<Node>, Vec<PathSeg>),
    JsonArrayLength(Box<Node>),
    Lower(Box<Node>),
    Coalesce(Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Like {
        left: Box<Node>,
        right: Box<Node>,
        negated: bool,
        /// `left LIKE ('%' || right || '%')`: right is a column, not a pattern.
        wrap: bool,
    },
    IsNull(Box<Node>, bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// `NOT EXISTS (SELECT 1 FROM (sub) a [LEFT JOIN (sub2) b] WHERE pred)`.
    NotExists(Vec<(SubQuery, AliasId)>, Box<Node>),
    /// `needle IN (SELECT je.value FROM json_each(column) je)` (back-relations).
    InJsonEach(Box<Node>, Box<Node>, AliasId),
    /// `needle IN (?, ?, ...)`.
    InList(Box<Node>, Vec<Param>),
    GeoDistance(Box<[Node; 4]>),
    Strftime(Vec<Node>),
    Random,
}

/// The rows a multi-value path reaches, for the "every value" check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubQuery {
    pub value: Node,
    pub table: String,
    pub from_alias: AliasId,
    pub joins: Vec<Join>,
    pub target: AliasId,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JoinSource {
    /// A collection's table.
    Table(String),
    /// `json_each` over a column, arrays iterated, scalars as one row.
    JsonEachCol(Node),
    /// `json_each(?)` over a bound JSON array.
    JsonEachParam(Param),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Join {
    pub source: JoinSource,
    pub alias: AliasId,
    pub on: Option<Node>,
}

pub(crate) fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    s.push_str(&name.replace('"', "\"\""));
    s.push('"');
    s
}

fn json_path_text(prefix: &str, path: &[PathSeg]) -> String {
    let mut s = String::from(prefix);
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            PathSeg::Index(i) => {
                s.push('[');
                s.push_str(i);
                s.push(']');
            }
        }
    }
    s
}

/// Renders nodes to SQL text, collecting parameters in textual order.
pub(crate) struct Renderer<'a> {
    pub aliases: &'a [String],
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl Renderer<'_> {
    fn alias(&mut self, id: AliasId) {
        let name = self.aliases.get(id).map(String::as_str).unwrap_or("_");
        self.sql.push_str(&quote_ident(name));
    }

    fn param(&mut self, v: SqlValue) {
        self.sql.push('?');
        self.params.push(v);
    }

    pub fn join(&mut self, j: &Join) {
        self.sql.push_str("LEFT JOIN ");
        match &j.source {
            JoinSource::Table(t) => self.sql.push_str(&quote_ident(t)),
            JoinSource::JsonEachCol(col) => {
                self.sql.push_str("json_each(CASE WHEN iif(json_valid(");
                self.node(col);
                self.sql.push_str("), json_type(");
                self.node(col);
                self.sql.push_str(")='array', FALSE) THEN ");
                self.node(col);
                self.sql.push_str(" ELSE json_array(");
                self.node(col);
                self.sql.push_str(") END)");
            }
            JoinSource::JsonEachParam(p) => {
                self.sql.push_str("json_each(");
                self.param(p.to_sql());
                self.sql.push(')');
            }
        }
        self.sql.push(' ');
        self.alias(j.alias);
        if let Some(on) = &j.on {
            self.sql.push_str(" ON ");
            self.node(on);
        }
    }

    fn sub(&mut self, s: &SubQuery) {
        self.sql.push_str("SELECT ");
        self.node(&s.value);
        self.sql.push_str(" AS \"multiMatchValue\" FROM ");
        self.sql.push_str(&quote_ident(&s.table));
        self.sql.push(' ');
        self.alias(s.from_alias);
        for j in &s.joins {
            self.sql.push(' ');
            self.join(j);
        }
        self.sql.push_str(" WHERE ");
        self.alias(s.from_alias);
        self.sql.push_str(".\"id\" = ");
        self.alias(s.target);
        self.sql.push_str(".\"id\"");
    }

    pub fn node(&mut self, n: &Node) {
        match n {
            Node::Col { alias, field } => {
                self.alias(*alias);
                self.sql.push('.');
                self.sql.push_str(&quote_ident(&field.name));
            }
            Node::RowId(a) => {
                self.alias(*a);
                self.sql.push_str("._rowid_");
            }
            Node::JeValue(a) => {
                self.alias(*a);
                self.sql.push_str(".\"value\"");
            }
            Node::MmValue(a, _) => {
                self.alias(*a);
                self.sql.push_str(".\"multiMatchValue\"");
            }
            Node::Param(p) => self.param(p.to_sql()),
            Node::Lit(l) => match l {
                Lit::Null => self.sql.push_str("NULL"),
                Lit::EmptyText => self.sql.push_str("''"),
                Lit::Int(i) => {
                    let _ = write!(self.sql, "{i}");
                }
                Lit::True => self.sql.push_str("TRUE"),
                Lit::False => self.sql.push_str("FALSE"),
            },
            Node::JsonExtract(inner, path) => self.json_extract(inner, path),
            Node::JsonArrayLength(c) => self.json_array_length(c),
            Node::Lower(x) => self.call("LOWER", std::slice::from_ref(&**x)),
            Node::Coalesce(x) => {
                self.sql.push_str("COALESCE(");
                self.node(x);
                self.sql.push_str(", '')");
            }
            Node::Cmp(op, l, r) => {
                self.node(l);
                self.sql.push(' ');
                self.sql.push_str(op.sql());
                self.sql.push(' ');
                self.node(r);
            }
            Node::Like {
                left,
                right,
                negated,
                wrap,
            } => self.like(left, right, *negated, *wrap),
            Node::IsNull(x, negated) => {
                self.node(x);
                self.sql
                    .push_str(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::And(items) | Node::Or(items) => {
                let sep = if matches!(n, Node::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(sep);
                    }
                    self.node(item);
                }
                self.sql.push(')');
            }
            Node::Not(x) => {
                self.sql.push_str("NOT (");
                self.node(x);
                self.sql.push(')');
            }
            Node::NotExists(subs, pred) => self.not_exists(subs, pred),
            Node::InJsonEach(needle, col, je) => self.in_json_each(needle, col, *je),
            Node::InList(needle, items) => self.in_list(needle, items),
            Node::GeoDistance(args) => self.geo_distance(args),
            Node::Strftime(args) => self.call("strftime", args),
            Node::Random => self.sql.push_str("RANDOM()"),
        }
    }

    /// `inner` at a JSON path, whether it holds JSON text or a plain value.
    fn json_extract(&mut self, inner: &Node, path: &[PathSeg]) {
        self.sql.push_str("(CASE WHEN json_valid(");
        self.node(inner);
        self.sql.push_str(") THEN JSON_EXTRACT(");
        self.node(inner);
        self.sql.push_str(", ");
        self.param(SqlValue::Text(json_path_text("$", path)));
        self.sql.push_str(") ELSE JSON_EXTRACT(json_object('pb', ");
        self.node(inner);
        self.sql.push_str("), ");
        self.param(SqlValue::Text(json_path_text("$.pb", path)));
        self.sql.push_str(") END)");
    }

    /// The length of `c` as an array: a JSON array, none when empty or NULL, else one.
    fn json_array_length(&mut self, c: &Node) {
        self.sql
            .push_str("json_array_length(CASE WHEN iif(json_valid(");
        self.node(c);
        self.sql.push_str("), json_type(");
        self.node(c);
        self.sql.push_str(")='array', FALSE) THEN ");
        self.node(c);
        self.sql.push_str(" ELSE (CASE WHEN ");
        self.node(c);
        self.sql.push_str(" = '' OR ");
        self.node(c);
        self.sql
            .push_str(" IS NULL THEN json_array() ELSE json_array(");
        self.node(c);
        self.sql.push_str(") END) END)");
    }

    /// `left [NOT] LIKE right`, with right wrapped in `%` when it is a column.
    fn like(&mut self, left: &Node, right: &Node, negated: bool, wrap: bool) {
        self.node(left);
        self.sql
            .push_str(if negated { " NOT LIKE " } else { " LIKE " });
        if wrap {
            self.sql.push_str("('%' || ");
            self.node(right);
            self.sql.push_str(" || '%')");
        } else {
            self.node(right);
        }
        self.sql.push_str(" ESCAPE '\\'");
    }

    /// No row of the joined sub-queries fails `pred`.
    fn not_exists(&mut self, subs: &[(SubQuery, AliasId)], pred: &Node) {
        self.sql.push_str("NOT EXISTS (SELECT 1 FROM ");
        for (i, (sub, alias)) in subs.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(" LEFT JOIN ");
            }
            self.sql.push('(');
            self.sub(sub);
            self.sql.push_str(") ");
            self.alias(*alias);
        }
        self.sql.push_str(" WHERE ");
        self.node(pred);
        self.sql.push(')');
    }

    /// `needle` is one of the values of JSON array column `col`.
    fn in_json_each(&mut self, needle: &Node, col: &Node, je: AliasId) {
        self.node(needle);
        self.sql.push_str(" IN (SELECT ");
        self.alias(je);
        self.sql.push_str(".\"value\" FROM ");
        self.join(&Join {
            source: JoinSource::JsonEachCol(col.clone()),
            alias: je,
            on: None,
        });
        // `join` wrote "LEFT JOIN json_each(..) alias"; drop the keyword.
        if let Some(at) = self.sql.rfind("FROM LEFT JOIN ") {
            self.sql.replace_range(at + 5..at + 15, "");
        }
        self.sql.push(')');
    }

    /// `needle IN (?, ...)`.
    fn in_list(&mut self, needle: &Node, items: &[Param]) {
        self.node(needle);
        self.sql.push_str(" IN (");
        for (i, p) in items.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.param(p.to_sql());
        }
        self.sql.push(')');
    }

    /// Great-circle distance in km between two lon/lat points (haversine on a 6371 km sphere).
    fn geo_distance(&mut self, args: &[Node; 4]) {
        let [lon_a, lat_a, lon_b, lat_b] = args;
        self.sql.push_str("(6371 * acos(cos(radians(");
        self.node(lat_a);
        self.sql.push_str(")) * cos(radians(");
        self.node(lat_b);
        self.sql.push_str(")) * cos(radians(");
        self.node(lon_b);
        self.sql.push_str(") - radians(");
        self.node(lon_a);
        self.sql.push_str(")) + sin(radians(");
        self.node(lat_a);
        self.sql.push_str(")) * sin(radians(");
        self.node(lat_b);
        self.sql.push_str("))))");
    }

    fn call(&mut self, name: &str, args: &[Node]) {
        self.sql.push_str(name);
        self.sql.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.node(a);
        }
        self.sql.push(')');
    }
}

// ---------------------------------------------------------------------------
// In-memory evaluation
// ---------------------------------------------------------------------------

/// Most row combinations one evaluation may visit (joins multiply).
pub(crate) const MAX_EVAL_ROWS: usize = 100_000;

#[derive(Debug, Clone)]
pub(crate) enum Row<'a> {
    Unbound,
    /// The record itself (the base table or a multi-match copy of it).
    Record(&'a serde_json::Map<String, Value>),
    /// A `json_each` or sub-query row: its single value.
    Value(Val<'a>),
}

/// Evaluation state: the current row of every alias, indexed by alias id.
pub(crate) struct Env<'a, 'r> {
    pub rows: &'r mut [Row<'a>],
    pub record: &'a serde_json::Map<String, Value>,
    pub visited: usize,
}

fn truth(b: Option<bool>) -> Val<'static> {
    match b {
        None => Val::Null,
        Some(b) => Val::Int(i64::from(b)),
    }
}

/// SQLite's truth test: NULL is unknown, numbers are true when non-zero,
/// text is converted to a number first.
#[inline]
pub(crate) fn truthy(v: &Val<'_>) -> Option<bool> {
    // Comparisons and boolean nodes yield integers or NULL: decide those
    // without the general conversion.
    match v {
        Val::Int(i) => return Some(*i != 0),
        Val::Null => return None,
        _ => {}
    }
    match numeric_affinity(v.clone()).plain() {
        Val::Null => None,
        Val::Int(i) => Some(i != 0),
        Val::Real(f) => Some(f != 0.0),
        // Non-numeric text reads as 0, as in SQLite.
        _ => Some(false),
    }
}

fn owned(v: Val<'_>) -> Val<'static> {
    match v {
        Val::Null => Val::Null,
        Val::Int(i) => Val::Int(i),
        Val::Real(f) => Val::Real(f),
        Val::Text(s) => Val::Text(Cow::Owned(s.into_owned())),
        Val::Json(j) => Val::Text(Cow::Owned(crate::value::go_json(j))),
    }
}

fn walk_json<'v>(mut v: &'v Value, path: &[PathSeg]) -> Option<&'v Value> {
    for seg in path {
        v = match (seg, v) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get(i.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The elements `json_each(CASE WHEN <array> THEN x ELSE json_array(x) END)` yields.
fn each_values<'a>(v: Val<'a>) -> Vec<Val<'a>> {
    match v {
        Val::Json(Value::Array(items)) => items.iter().map(json_scalar).collect(),
        Val::Json(other) => vec![Val::Json(other).plain()],
        Val::Text(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(items)) => items.iter().map(|i| owned(json_scalar(i))).collect(),
            _ => vec![Val::Text(s)],
        },
        other => vec![other],
    }
}

impl Node {
    pub fn affinity(&self) -> Affinity {
        match self {
            Node::Col { field, .. } => field_affinity(field),
            Node::MmValue(_, a) => *a,
            _ => Affinity::None,
        }
    }

    /// Why this node cannot run in memory, if it cannot.
    pub fn sql_only(&self) -> Option<&'static str> {
        let mut reason = None;
        self.visit(&mut |n| match n {
            Node::Strftime(_) => reason = Some("strftime() runs in SQLite only"),
            Node::InJsonEach(..) | Node::InList(..) => reason = Some("the rule joins other rows"),
            Node::NotExists(subs, _) => {
                for (s, _) in subs {
                    if s.joins
                        .iter()
                        .any(|j| matches!(j.source, JoinSource::Table(_)))
                    {
                        reason = Some("the rule joins other rows");
                    }
                }
            }
            _ => {}
        });
        reason
    }

    fn visit(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match self {
            Node::JsonExtract(x, _)
            | Node::JsonArrayLength(x)
            | Node::Lower(x)
            | Node::Coalesce(x)
            | Node::IsNull(x, _)
            | Node::Not(x)
            | Node::InList(x, _) => x.visit(f),
            Node::Cmp(_, l, r)
            | Node::Like {
                left: l, right: r, ..
            }
            | Node::InJsonEach(l, r, _) => {
                l.visit(f);
                r.visit(f);
            }
            Node::And(items) | Node::Or(items) | Node::Strftime(items) => {
                items.iter().for_each(|i| i.visit(f))
            }
            Node::GeoDistance(args) => args.iter().for_each(|i| i.visit(f)),
            Node::NotExists(subs, pred) => {
                for (s, _) in subs {
                    s.value.visit(f);
                    for j in &s.joins {
                        if let JoinSource::JsonEachCol(c) = &j.source {
                            c.visit(f);
                        }
                    }
                }
                pred.visit(f);
            }
            _ => {}
        }
    }

    pub fn eval<'a>(&'a self, env: &mut Env<'a, '_>) -> Result<Val<'a>> {
        Ok(match self {
            Node::Col { alias, field } => match env.rows.get(*alias) {
                Some(Row::Record(map)) => column_val(field, map.get(&field.name)),
                _ => Val::Null,
            },
            Node::JeValue(a) | Node::MmValue(a, _) => match env.rows.get(*a) {
                Some(Row::Value(v)) => v.clone(),
                _ => Val::Null,
            },
            Node::Param(p) => p.val(),
            Node::Lit(l) => match l {
                Lit::Null => Val::Null,
                Lit::EmptyText => Val::Text(Cow::Borrowed("")),
                Lit::Int(i) => Val::Int(*i),
                Lit::True => Val::Int(1),
                Lit::False => Val::Int(0),
            },
            Node::JsonExtract(inner, path) => match inner.eval(env)? {
                Val::Null => Val::Null,
                Val::Json(j) => walk_json(j, path).map(json_scalar).unwrap_or(Val::Null),
                other => {
                    let text = other.to_text().unwrap_or_default();
                    let doc = serde_json::from_str::<Value>(&text)
                        .unwrap_or_else(|_| Value::String(text.into_owned()));
                    owned(walk_json(&doc, path).map(json_scalar).unwrap_or(Val::Null))
                }
            },
            Node::JsonArrayLength(x) => {
                let v = x.eval(env)?;
                let n = match &v {
                    Val::Null => 0,
                    Val::Json(Value::Array(a)) => a.len(),
                    Val::Text(s) => match serde_json::from_str::<Value>(s) {
                        Ok(Value::Array(a)) => a.len(),
                        _ if s.is_empty() => 0,
                        _ => 1,
                    },
                    _ => 1,
                };
                Val::Int(n as i64)
            }
            Node::Lower(x) => match x.eval(env)?.to_text() {
                None => Val::Null,
                Some(t) => Val::Text(Cow::Owned(t.to_ascii_lowercase())),
            },
            Node::Coalesce(x) => match x.eval(env)? {
                Val::Null => Val::Text(Cow::Borrowed("")),
                v => v,
            },
            Node::Cmp(op, l, r) => {
                let (lv, rv) = (l.eval(env)?, r.eval(env)?);
                let (lv, rv) = with_affinity(lv, l.affinity(), rv, r.affinity());
                truth(compare_with(*op, &lv, &rv))
            }
            Node::Like {
                left,
                right,
                negated,
                wrap,
            } => {
                let text = left.eval(env)?.to_text();
                let pat = right.eval(env)?.to_text();
                truth(match (text, pat) {
                    (Some(t), Some(p)) => {
                        let m = if *wrap {
                            like(&t, &format!("%{p}%"))
                        } else {
                            like(&t, &p)
                        };
                        Some(m != *negated)
                    }
                    _ => None,
                })
            }
            Node::IsNull(x, negated) => truth(Some(x.eval(env)?.is_null() != *negated)),
            Node::And(items) => {
                let mut out = Some(true);
                for item in items {
                    match truthy(&item.eval(env)?) {
                        Some(false) => return Ok(Val::Int(0)),
                        None => out = None,
                        Some(true) => {}
                    }
                }
                truth(out)
            }
            Node::Or(items) => {
                let mut out = Some(false);
                for item in items {
                    match truthy(&item.eval(env)?) {
                        Some(true) => return Ok(Val::Int(1)),
                        None => out = None,
                        Some(false) => {}
                    }
                }
                truth(out)
            }
            Node::Not(x) => truth(truthy(&x.eval(env)?).map(|b| !b)),
            Node::NotExists(subs, pred) => {
                let mut lists = Vec::with_capacity(subs.len());
                for (sub, _) in subs {
                    lists.push(sub_values(sub, env)?);
                }
                let found = match (subs.as_slice(), lists.as_slice()) {
                    ([(_, a)], [l]) => any_row(env, &[(*a, l)], pred)?,
                    ([(_, a), (_, b)], [l, r]) => any_row(env, &[(*a, l), (*b, r)], pred)?,
                    _ => return Err(Error::NeedsSql("unsupported sub-query shape")),
                };
                Val::Int(i64::from(!found))
            }
            Node::GeoDistance(args) => {
                let mut nums = [0.0f64; 4];
                for (slot, arg) in nums.iter_mut().zip(args.iter()) {
                    match numeric_affinity(arg.eval(env)?).plain() {
                        Val::Int(i) => *slot = i as f64,
                        Val::Real(f) => *slot = f,
                        _ => return Ok(Val::Null),
                    }
                }
                great_circle_km(nums)
            }
            Node::RowId(_) | Node::Random => return Err(Error::NeedsSql("sort-only expression")),
            Node::Strftime(_) => return Err(Error::NeedsSql("strftime() runs in SQLite only")),
            Node::InJsonEach(..) | Node::InList(..) => {
                return Err(Error::NeedsSql("the rule joins other rows"));
            }
        })
    }
}

/// `lv op rv` after affinities are applied: `IS`/`IS NOT` treat NULLs as equal values, every
/// other comparison with a NULL is unknown.
#[inline]
fn compare_with(op: CmpOp, lv: &Val<'_>, rv: &Val<'_>) -> Option<bool> {
    let ord = || compare(lv, rv);
    match op {
        CmpOp::Is | CmpOp::IsNot => {
            let same = match (lv.is_null(), rv.is_null()) {
                (true, true) => true,
                (true, false) | (false, true) => false,
                _ => ord().is_eq(),
            };
            Some(same == (op == CmpOp::Is))
        }
        _ if lv.is_null() || rv.is_null() => None,
        CmpOp::Eq => Some(ord().is_eq()),
        CmpOp::Lt => Some(ord().is_lt()),
        CmpOp::Lte => Some(ord().is_le()),
        CmpOp::Gt => Some(ord().is_gt()),
        CmpOp::Gte => Some(ord().is_ge()),
    }
}

/// The SQL `geoDistance` formula on `[lon_a, lat_a, lon_b, lat_b]`: kilometres on a 6371 km
/// sphere, NULL where `acos` leaves its domain.
fn great_circle_km([lon_a, lat_a, lon_b, lat_b]: [f64; 4]) -> Val<'static> {
    let rad = |x: f64| x * (std::f64::consts::PI / 180.0);
    let d = 6371.0
        * (rad(lat_a).cos() * rad(lat_b).cos() * (rad(lon_b) - rad(lon_a)).cos()
            + rad(lat_a).sin() * rad(lat_b).sin())
        .acos();
    if d.is_nan() { Val::Null } else { Val::Real(d) }
}

/// Every value a multi-match sub-query yields for the current record.
fn sub_values<'a>(sub: &'a SubQuery, env: &mut Env<'a, '_>) -> Result<Vec<Val<'a>>> {
    let record = env.record;
    env.rows[sub.from_alias] = Row::Record(record);
    let mut out = Vec::new();
    collect_rows(env, &sub.joins, &mut |env| {
        out.push(sub.value.eval(env)?);
        Ok(false)
    })?;
    Ok(out)
}

/// Whether `pred` holds for some combination of the given sub-query rows.
fn any_row<'a>(
    env: &mut Env<'a, '_>,
    sets: &[(AliasId, &Vec<Val<'a>>)],
    pred: &'a Node,
) -> Result<bool> {
    let Some(((alias, values), rest)) = sets.split_first() else {
        env.visited += 1;
        if env.visited > MAX_EVAL_ROWS {
            return Err(Error::Limit {
                what: "rows visited by one evaluation",
                limit: MAX_EVAL_ROWS,
            });
        }
        return Ok(truthy(&pred.eval(env)?) == Some(true));
    };
    // A LEFT JOIN of an empty derived table still yields one all-NULL row.
    let null = [Val::Null];
    let values: &[Val<'a>] = if values.is_empty() { &null } else { values };
    for v in values {
        env.rows[*alias] = Row::Value(v.clone());
        if any_row(env, rest, pred)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Enumerates the LEFT JOIN rows of `joins` (json_each only), calling `leaf`
/// for each full combination until it returns `true`.
pub(crate) fn collect_rows<'a>(
    env: &mut Env<'a, '_>,
    joins: &'a [Join],
    leaf: &mut dyn FnMut(&mut Env<'a, '_>) -> Result<bool>,
) -> Result<bool> {
    let Some((join, rest)) = joins.split_first() else {
        env.visited += 1;
        if env.visited > MAX_EVAL_ROWS {
            return Err(Error::Limit {
                what: "rows visited by one evaluation",
                limit: MAX_EVAL_ROWS,
            });
        }
        return leaf(env);
    };
    let values = match &join.source {
        JoinSource::Table(_) => return Err(Error::NeedsSql("the rule joins other rows")),
        JoinSource::JsonEachCol(col) => each_values(col.eval(env)?),
        JoinSource::JsonEachParam(p) => each_values(p.val()),
    };
    let values = if values.is_empty() {
        vec![Val::Null]
    } else {
        values
    };
    for v in values {
        env.rows[join.alias] = Row::Value(v);
        if collect_rows(env, rest, leaf)? {
            return Ok(true);
        }
    }
    Ok(false)
}
