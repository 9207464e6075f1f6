//! Resolution of identifiers against the schema and compilation of an
//! [`Expr`] into the [`Node`] tree, following PocketBase's semantics.
//!
//! Invariants that matter for safety:
//! * every table and column name written into SQL comes from the schema
//!   (`CollectionInfo::name`, `FieldInfo::name`) or from alias names built from
//!   them, and is always quoted by the renderer;
//! * every value that comes from the filter text or the request is a bound
//!   parameter; the only literals spliced are the constants of [`Lit`];
//! * JSON paths taken from the filter are restricted to ASCII word characters
//!   and still bound as parameters.

use std::sync::Arc;

use serde_json::Value;

use crate::ast::{Expr, Op, Operand};
use crate::error::{Error, Result};
use crate::ir::{AliasId, CmpOp, Join, JoinSource, Lit, Node, Param, PathSeg, SubQuery};
use crate::request::{MacroValue, RequestContext, macro_value};
use crate::schema::{CollectionInfo, CollectionType, FieldInfo, FieldType, SchemaSource};
use crate::value::go_json;

/// Deepest relation path (`a.b.c...`), as in PocketBase.
pub const MAX_RELATION_DEPTH: usize = 6;
/// Most joins one query may accumulate (SQLite allows 64 tables per SELECT).
pub const MAX_JOINS: usize = 48;
/// Most bound parameters one query may accumulate.
pub const MAX_PARAMS: usize = 20_000;

/// Who the expression is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// API rules and superuser filters: hidden fields usable, joined
    /// collections' list rules not applied.
    Trusted,
    /// A non-superuser's `filter`/`sort`: no hidden fields, no `@request.*` or
    /// `@collection.*`, emails only where visible, and every joined collection
    /// must be listable (its list rule is AND-ed into the query).
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fallback {
    Auto,
    Disabled,
    Enforced,
}

/// One resolved operand (PocketBase's "resolver result").
#[derive(Debug, Clone)]
struct Resolved {
    node: Node,
    params: usize,
    empty_param: bool,
    fallback: Fallback,
    multi: Option<SubQuery>,
    /// Auth `email` on a client filter: `(expr AND alias.emailVisibility = TRUE)`.
    email_guard: Option<AliasId>,
    /// Wrap the finished comparison in `NOT (..)` (sub-query predicates).
    negate_after: bool,
}

impl Resolved {
    fn plain(node: Node) -> Self {
        Resolved {
            node,
            params: 0,
            empty_param: false,
            fallback: Fallback::Auto,
            multi: None,
            email_guard: None,
            negate_after: false,
        }
    }

    fn lit(l: Lit) -> Self {
        Resolved::plain(Node::Lit(l))
    }

    fn param(p: Param) -> Self {
        let empty = p.is_empty();
        Resolved {
            params: 1,
            empty_param: empty,
            ..Resolved::plain(Node::Param(p))
        }
    }

    fn is_empty_ident(&self) -> bool {
        matches!(self.node, Node::Lit(Lit::Null | Lit::EmptyText))
    }

    fn is_empty(&self) -> bool {
        self.is_empty_ident()
            || (self.fallback == Fallback::Auto && self.params == 1 && self.empty_param)
    }

    fn known_non_empty(&self) -> bool {
        if self.fallback == Fallback::Enforced {
            return false;
        }
        if matches!(
            self.node,
            Node::Lit(Lit::Int(0 | 1) | Lit::True | Lit::False)
        ) {
            return true;
        }
        self.params > 0 && !self.empty_param && !self.is_empty_ident()
    }
}

/// Per-compilation settings: the base table and how to treat it.
#[derive(Clone)]
struct Scope<'s> {
    schema: &'s dyn SchemaSource,
    request: &'s RequestContext,
    access: Access,
    base: Arc<CollectionInfo>,
    base_alias: AliasId,
    /// Appended to join aliases so a joined collection's list rule cannot
    /// collide with the filter's own joins.
    suffix: String,
}

impl Scope<'_> {
    fn allow_hidden(&self) -> bool {
        self.access == Access::Trusted
    }
}

/// The accumulating query: joins, aliases and conditions for one base table.
#[derive(Debug, Clone)]
pub(crate) struct Builder {
    pub base: Arc<CollectionInfo>,
    pub aliases: Vec<String>,
    pub joins: Vec<Join>,
    pub wheres: Vec<Node>,
    pub orders: Vec<(Node, bool)>,
    /// Aliases of joined collections whose list rule is already applied.
    listed: Vec<String>,
    counter: usize,
}

fn unknown(token: &str, pos: usize, reason: impl Into<String>) -> Error {
    Error::UnknownField {
        token: token.to_string(),
        pos,
        reason: reason.into(),
    }
}

fn invalid(token: &str, pos: usize, reason: impl Into<String>) -> Error {
    Error::InvalidField {
        token: token.to_string(),
        pos,
        reason: reason.into(),
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_path(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':'))
}

/// The identifier shapes PocketBase accepts for record collections.
fn allowed_shape(name: &str) -> bool {
    if name == "@request.context" || name == "@request.method" {
        return true;
    }
    for root in [
        "@request.auth.",
        "@request.body.",
        "@request.query.",
        "@request.headers.",
    ] {
        if let Some(rest) = name.strip_prefix(root) {
            return is_path(rest)
                && rest.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        }
    }
    if let Some(rest) = name.strip_prefix("@collection.") {
        let Some((coll, path)) = rest.split_once('.') else {
            return false;
        };
        let coll_ok = match coll.split_once(':') {
            Some((c, a)) => is_word(c) && is_word(a),
            None => is_word(coll),
        };
        return coll_ok
            && is_path(path)
            && path.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    }
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && is_path(name)
}

const MODIFIERS: [&str; 5] = ["isset", "each", "length", "lower", "changed"];

/// `name:modifier` → (name, modifier); more than one `:` leaves the text whole
/// (it then fails as an unknown field), an unknown modifier is an error.
fn split_modifier<'t>(prop: &'t str, token: &str, pos: usize) -> Result<(&'t str, &'t str)> {
    let mut parts = prop.split(':');
    let (Some(name), Some(m), None) = (parts.next(), parts.next(), parts.next()) else {
        return Ok((prop, ""));
    };
    if MODIFIERS.contains(&m) {
        Ok((name, m))
    } else {
        Err(invalid(token, pos, format!("unknown modifier {m:?}")))
    }
}

/// State of resolving one identifier (PocketBase's "runner").
struct Runner {
    coll: Arc<CollectionInfo>,
    alias: AliasId,
    alias_name: String,
    nullify_missing: bool,
    multi: bool,
    mm_table: String,
    mm_from: AliasId,
    mm_joins: Vec<Join>,
    mm_alias: AliasId,
    mm_alias_name: String,
    mm_value: Option<Node>,
}

fn col(alias: AliasId, field: &FieldInfo) -> Node {
    Node::Col {
        alias,
        field: Box::new(field.clone()),
    }
}

/// PocketBase's `toSlice`: null → [], arrays as is, anything else → [x].
fn to_slice(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// Go's `cast.ToString` for the values a request can carry.
fn go_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => go_float(n.as_f64().unwrap_or(0.0)),
        _ => String::new(),
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`.
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// The text a LIKE pattern parameter becomes, with PocketBase's automatic
/// `%...%` wrapping unless the value already holds an unescaped `%`.
fn like_pattern(p: &Param) -> String {
    let s = match p {
        Param::Bool(b) => b.to_string(),
        Param::Int(i) => i.to_string(),
        Param::Real(f) => go_float(*f),
        Param::Text(s) => s.clone(),
    };
    if contains_unescaped_percent(&s) {
        return s;
    }
    format!("%{}%", escape_like(&s))
}

fn contains_unescaped_percent(s: &str) -> bool {
    let mut prev = '\0';
    for c in s.chars() {
        if c == '%' && prev != '\\' {
            return true;
        }
        prev = if c == '\\' && prev == '\\' { '\0' } else { c };
    }
    false
}

/// Escapes `\`, `%` and `_` unless already preceded by a backslash (scanning
/// from the end, as PocketBase does).
fn escape_like(s: &str) -> String {
    let rs: Vec<char> = s.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(rs.len() + 4);
    let mut pending = false;
    for i in (0..rs.len()).rev() {
        if pending {
            if rs[i] != '\\' {
                out.push('\\');
            }
            pending = false;
        } else if matches!(rs[i], '\\' | '%' | '_') {
            pending = true;
        }
        out.push(rs[i]);
        if i == 0 && pending {
            out.push('\\');
        }
    }
    out.iter().rev().collect()
}

fn wrap_like_params(n: &mut Node) {
    match n {
        Node::Param(p) => *p = Param::Text(like_pattern(p)),
        Node::Lower(x) | Node::Coalesce(x) => wrap_like_params(x),
        Node::Strftime(items) => items.iter_mut().for_each(wrap_like_params),
        Node::GeoDistance(args) => args.iter_mut().for_each(wrap_like_params),
        _ => {}
    }
}

fn json_value_param(v: &Value, number_field: bool) -> Option<Param> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => Param::Bool(*b),
        Value::Number(n) => Param::Real(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => {
            if number_field && let Ok(f) = s.trim().parse::<f64>() {
                Param::Real(f)
            } else {
                Param::Text(s.clone())
            }
        }
        other => Param::Text(go_json(other)),
    })
}

impl Builder {
    pub fn new(base: Arc<CollectionInfo>) -> Self {
        Builder {
            aliases: vec![base.name.clone()],
            base,
            joins: Vec::new(),
            wheres: Vec::new(),
            orders: Vec::new(),
            listed: Vec::new(),
            counter: 0,
        }
    }

    fn fresh_alias(&mut self, name: String) -> AliasId {
        self.aliases.push(name);
        self.aliases.len() - 1
    }

    /// The main-query alias of that name, shared by every reference to it.
    fn main_alias(&mut self, name: &str) -> AliasId {
        match self.joins.iter().find(|j| self.aliases[j.alias] == name) {
            Some(j) => j.alias,
            None => self.fresh_alias(name.to_string()),
        }
    }

    fn next_suffix(&mut self) -> String {
        self.counter += 1;
        format!("_r{}", self.counter)
    }

    fn scope<'s>(
        &self,
        schema: &'s dyn SchemaSource,
        request: &'s RequestContext,
        access: Access,
    ) -> Scope<'s> {
        Scope {
            schema,
            request,
            access,
            base: self.base.clone(),
            base_alias: 0,
            suffix: String::new(),
        }
    }

    pub fn add_where(
        &mut self,
        schema: &dyn SchemaSource,
        request: &RequestContext,
        expr: &Expr,
        access: Access,
    ) -> Result<()> {
        let scope = self.scope(schema, request, access);
        let node = self.expr(&scope, expr)?;
        self.wheres.push(node);
        Ok(())
    }

    pub fn add_order(
        &mut self,
        schema: &dyn SchemaSource,
        request: &RequestContext,
        name: &str,
        desc: bool,
        access: Access,
    ) -> Result<()> {
        let node = match name {
            "@random" => Node::Random,
            "@rowid" => Node::RowId(0),
            _ => {
                let scope = self.scope(schema, request, access);
                let operand = Operand::Ident {
                    name: name.to_string(),
                    pos: crate::ast::Pos(0),
                };
                let r = self
                    .operand(&scope, &operand)
                    .map_err(|_| Error::InvalidSort(name.to_string()))?;
                if r.params > 0 || matches!(r.node, Node::Lit(Lit::Null)) {
                    return Err(Error::InvalidSort(name.to_string()));
                }
                r.node
            }
        };
        self.orders.push((node, desc));
        Ok(())
    }

    fn expr(&mut self, scope: &Scope<'_>, e: &Expr) -> Result<Node> {
        match e {
            Expr::Cmp { left, op, right } => {
                let l = self.operand(scope, left)?;
                let r = self.operand(scope, right)?;
                Ok(self.build(l, *op, r))
            }
            Expr::And(items) => Ok(Node::And(
                items
                    .iter()
                    .map(|i| self.expr(scope, i))
                    .collect::<Result<_>>()?,
            )),
            Expr::Or(items) => Ok(Node::Or(
                items
                    .iter()
                    .map(|i| self.expr(scope, i))
                    .collect::<Result<_>>()?,
            )),
        }
    }

    /// One comparison, with PocketBase's NULL handling and "every value" checks.
    fn build(&mut self, l: Resolved, op: Op, r: Resolved) -> Node {
        let base = op.base();
        let mut expr = match base {
            Op::Eq | Op::Neq => equal_expr(base == Op::Eq, &l, &r),
            Op::Like | Op::NotLike => {
                let negated = base == Op::NotLike;
                if r.params == 0 {
                    Node::Like {
                        left: Box::new(l.node.clone()),
                        right: Box::new(r.node.clone()),
                        negated,
                        wrap: true,
                    }
                } else {
                    let mut right = r.node.clone();
                    wrap_like_params(&mut right);
                    Node::Like {
                        left: Box::new(l.node.clone()),
                        right: Box::new(right),
                        negated,
                        wrap: false,
                    }
                }
            }
            _ => {
                let cmp = match base {
                    Op::Lt => CmpOp::Lt,
                    Op::Lte => CmpOp::Lte,
                    Op::Gt => CmpOp::Gt,
                    _ => CmpOp::Gte,
                };
                Node::Cmp(cmp, Box::new(l.node.clone()), Box::new(r.node.clone()))
            }
        };

        // Plain operators over a multi-valued side mean "for every value": the
        // row-level match AND no related value for which it fails.
        if !op.is_any() {
            let extra = match (&l.multi, &r.multi) {
                (Some(lm), Some(rm)) => {
                    let la = self.fresh_alias(format!("__ml{}", self.aliases.len()));
                    let ra = self.fresh_alias(format!("__mr{}", self.aliases.len()));
                    let lr = Resolved {
                        fallback: l.fallback,
                        ..Resolved::plain(Node::MmValue(la, lm.value.affinity()))
                    };
                    let rr = Resolved {
                        fallback: r.fallback,
                        negate_after: true,
                        ..Resolved::plain(Node::MmValue(ra, rm.value.affinity()))
                    };
                    let pred = self.build(lr, op, rr);
                    Some(Node::NotExists(
                        vec![(lm.clone(), la), (rm.clone(), ra)],
                        Box::new(pred),
                    ))
                }
                (Some(m), None) | (None, Some(m)) => {
                    let inverse = l.multi.is_none();
                    let (mm_side, other) = if inverse { (&r, &l) } else { (&l, &r) };
                    let alias = self.fresh_alias(format!("__sm{}", self.aliases.len()));
                    let r1 = Resolved {
                        fallback: mm_side.fallback,
                        negate_after: true,
                        ..Resolved::plain(Node::MmValue(alias, m.value.affinity()))
                    };
                    let r2 = Resolved {
                        params: other.params,
                        empty_param: other.empty_param,
                        ..Resolved::plain(other.node.clone())
                    };
                    let pred = if inverse {
                        self.build(r2, op, r1)
                    } else {
                        self.build(r1, op, r2)
                    };
                    Some(Node::NotExists(vec![(m.clone(), alias)], Box::new(pred)))
                }
                (None, None) => None,
            };
            if let Some(extra) = extra {
                expr = Node::And(vec![expr, extra]);
            }
        }

        for side in [&l, &r] {
            if let Some(alias) = side.email_guard {
                let vis = FieldInfo::new("emailVisibility", FieldType::Bool);
                expr = Node::And(vec![
                    expr,
                    Node::Cmp(
                        CmpOp::Eq,
                        Box::new(col(alias, &vis)),
                        Box::new(Node::Lit(Lit::True)),
                    ),
                ]);
            }
            if side.negate_after {
                expr = Node::Not(Box::new(expr));
            }
        }
        expr
    }

    fn operand(&mut self, scope: &Scope<'_>, o: &Operand) -> Result<Resolved> {
        match o {
            Operand::Text { value, .. } => Ok(Resolved::param(Param::Text(value.clone()))),
            Operand::Number { value, .. } => Ok(Resolved::param(Param::Real(*value))),
            Operand::Ident { name, pos } => {
                // The clock is read only for a macro (most identifiers are fields).
                let value = crate::request::is_macro(name)
                    .then(|| macro_value(name, scope.request.now()))
                    .flatten();
                if let Some(m) = value {
                    return Ok(Resolved::param(match m {
                        MacroValue::Text(t) => Param::Text(t),
                        MacroValue::Int(i) => Param::Int(i),
                    }));
                }
                match self.field(scope, name, pos.0) {
                    Ok(r) => Ok(r),
                    Err(e) => match name.to_ascii_lowercase().as_str() {
                        "null" => Ok(Resolved::lit(Lit::Null)),
                        "true" => Ok(Resolved::lit(Lit::Int(1))),
                        "false" => Ok(Resolved::lit(Lit::Int(0))),
                        _ => Err(e),
                    },
                }
            }
            Operand::Call { name, args, pos } => self.call(scope, name, args, pos.0),
        }
    }

    fn call(
        &mut self,
        scope: &Scope<'_>,
        name: &str,
        args: &[Operand],
        pos: usize,
    ) -> Result<Resolved> {
        let bad = |reason: String| Error::InvalidFunction {
            token: name.to_string(),
            pos,
            reason,
        };
        match name {
            "geoDistance" => {
                if args.len() != 4 {
                    return Err(bad(format!("expected 4 arguments, got {}", args.len())));
                }
                let mut resolved = Vec::with_capacity(4);
                for (i, a) in args.iter().enumerate() {
                    if !matches!(a, Operand::Ident { .. } | Operand::Number { .. }) {
                        return Err(bad(format!("argument {i} must be an identifier or number")));
                    }
                    resolved.push(self.operand(scope, a)?);
                }
                let params = resolved.iter().map(|r| r.params).sum();
                let empty_param = resolved.iter().any(|r| r.empty_param);
                let mut nodes = resolved.into_iter().map(|r| r.node);
                let (Some(a), Some(b), Some(c), Some(d)) =
                    (nodes.next(), nodes.next(), nodes.next(), nodes.next())
                else {
                    return Err(bad("expected 4 arguments".into()));
                };
                Ok(Resolved {
                    params,
                    empty_param,
                    fallback: Fallback::Disabled,
                    ..Resolved::plain(Node::GeoDistance(Box::new([a, b, c, d])))
                })
            }
            "strftime" => {
                if args.is_empty() || args.len() > 10 {
                    return Err(bad(format!(
                        "expected 1 to 10 arguments, got {}",
                        args.len()
                    )));
                }
                if !matches!(args[0], Operand::Text { .. }) {
                    return Err(bad("the first argument must be a format string".into()));
                }
                if let Some(a) = args.get(1)
                    && matches!(a, Operand::Call { .. })
                {
                    return Err(bad("the second argument must be a time value".into()));
                }
                if args
                    .iter()
                    .skip(2)
                    .any(|a| !matches!(a, Operand::Text { .. }))
                {
                    return Err(bad("modifier arguments must be strings".into()));
                }
                let mut resolved = Vec::with_capacity(args.len());
                for a in args {
                    resolved.push(self.operand(scope, a)?);
                }
                let params = resolved.iter().map(|r| r.params).sum();
                let empty_param = resolved.iter().any(|r| r.empty_param);
                let multi = resolved.get(1).and_then(|r| r.multi.clone());
                let nodes: Vec<Node> = resolved.into_iter().map(|r| r.node).collect();
                // A multi-valued time value carries its "every value" sub-query
                // through the function.
                let multi = multi.map(|mut sub| {
                    let mut sub_nodes = nodes.clone();
                    sub_nodes[1] = sub.value.clone();
                    sub.value = Node::Strftime(sub_nodes);
                    sub
                });
                Ok(Resolved {
                    params,
                    empty_param,
                    fallback: Fallback::Enforced,
                    multi,
                    ..Resolved::plain(Node::Strftime(nodes))
                })
            }
            _ => Err(bad("unknown function".into())),
        }
    }

    /// Adds a join to the main query (replacing one with the same alias) and,
    /// for client filters, gates it on the joined collection's list rule.
    fn register_join(
        &mut self,
        scope: &Scope<'_>,
        source: JoinSource,
        alias: AliasId,
        on: Option<Node>,
    ) -> Result<()> {
        if let (JoinSource::Table(table), false) = (&source, scope.allow_hidden()) {
            let name = self.aliases[alias].clone();
            if let Some(c) = scope.schema.collection(table) {
                match &c.list_rule {
                    None => {
                        return Err(Error::InvalidField {
                            token: c.name.clone(),
                            pos: 0,
                            reason: "its fields can be accessed only by superusers".into(),
                        });
                    }
                    Some(rule) if !rule.trim().is_empty() && !self.listed.contains(&name) => {
                        self.listed.push(name);
                        let text = format!("id='' || (\n{rule}\n)");
                        let expr = crate::parser::parse(&text)?
                            .ok_or_else(|| invalid(&c.name, 0, "empty list rule"))?;
                        let sub = Scope {
                            schema: scope.schema,
                            request: scope.request,
                            access: Access::Trusted,
                            base: c.clone(),
                            base_alias: alias,
                            suffix: self.next_suffix(),
                        };
                        // Register this join before compiling the rule, which may
                        // add joins hanging off it.
                        self.push_join(Join { source, alias, on })?;
                        let node = self.expr(&sub, &expr)?;
                        self.wheres.push(node);
                        return Ok(());
                    }
                    Some(_) => {}
                }
            }
        }
        self.push_join(Join { source, alias, on })
    }

    fn push_join(&mut self, join: Join) -> Result<()> {
        if let Some(existing) = self.joins.iter_mut().find(|j| j.alias == join.alias) {
            *existing = join;
            return Ok(());
        }
        if self.joins.len() >= MAX_JOINS {
            return Err(Error::Limit {
                what: "number of joins",
                limit: MAX_JOINS,
            });
        }
        self.joins.push(join);
        Ok(())
    }

    fn runner(&mut self, scope: &Scope<'_>, name: &str) -> Runner {
        let alias_name = self.aliases[scope.base_alias].clone();
        let mm_alias_name = format!("__mm_{alias_name}");
        let mm_from = self.fresh_alias(mm_alias_name.clone());
        Runner {
            coll: scope.base.clone(),
            alias: scope.base_alias,
            alias_name,
            nullify_missing: name.starts_with("@request."),
            multi: false,
            mm_table: scope.base.name.clone(),
            mm_from,
            mm_joins: Vec::new(),
            mm_alias: mm_from,
            mm_alias_name,
            mm_value: None,
        }
    }

    fn finish(&self, r: Runner, mut res: Resolved, target: AliasId) -> Result<Resolved> {
        if r.multi
            && let Some(value) = r.mm_value
        {
            if r.mm_joins.len() > MAX_JOINS {
                return Err(Error::Limit {
                    what: "number of joins",
                    limit: MAX_JOINS,
                });
            }
            res.multi = Some(SubQuery {
                value,
                table: r.mm_table,
                from_alias: r.mm_from,
                joins: r.mm_joins,
                target,
            });
        }
        Ok(res)
    }

    /// Resolves an identifier to a column, a request value or NULL.
    fn field(&mut self, scope: &Scope<'_>, name: &str, pos: usize) -> Result<Resolved> {
        if !allowed_shape(name) {
            return Err(unknown(name, pos, "not a filterable identifier"));
        }
        if scope.access == Access::Client && name.starts_with('@') {
            return Err(if name.starts_with("@collection.") {
                Error::SuperuserOnly("@collection.")
            } else {
                Error::SuperuserOnly("@request.")
            });
        }
        let props: Vec<&str> = name.split('.').collect();
        let mut r = self.runner(scope, name);

        if props[0] == "@collection" {
            if props.len() < 3 {
                return Err(invalid(name, pos, "expected @collection.<name>.<field>"));
            }
            let (coll_name, alias) = match props[1].split_once(':') {
                Some((c, a)) => (c, Some(a)),
                None => (props[1], None),
            };
            let coll = scope
                .schema
                .collection(coll_name)
                .ok_or_else(|| unknown(name, pos, format!("no collection {coll_name:?}")))?;
            let alias_name = match alias {
                Some(a) if !a.is_empty() => format!("__collection_alias_{a}{}", scope.suffix),
                _ => format!("__collection_{}{}", coll.name, scope.suffix),
            };
            let id = self.main_alias(&alias_name);
            self.register_join(scope, JoinSource::Table(coll.name.clone()), id, None)?;
            r.multi = true;
            let mm_name = format!("__mm_{alias_name}");
            let mm = self.fresh_alias(mm_name.clone());
            r.mm_joins.push(Join {
                source: JoinSource::Table(coll.name.clone()),
                alias: mm,
                on: None,
            });
            r.mm_alias = mm;
            r.mm_alias_name = mm_name;
            r.coll = coll;
            r.alias = id;
            r.alias_name = alias_name;
            return self.props(scope, r, &props[2..], name, pos);
        }

        if props[0] == "@request" {
            if name.starts_with("@request.auth.") {
                return self.request_auth(scope, r, &props, name, pos);
            }
            if name.starts_with("@request.body.") && props.len() > 2 {
                let (fname, modifier) = split_modifier(props[2], name, pos)?;
                if let Some(field) = scope.base.field(fname).cloned() {
                    if field.field_type == FieldType::Relation && props.len() > 3 {
                        return self.body_relation(scope, r, &field, &props, name, pos);
                    }
                    if props.len() == 3 {
                        let value = scope.request.body.get(fname);
                        match modifier {
                            "each" => return self.body_each(scope, r, &field, value, name, pos),
                            "length" => {
                                if !field.field_type.is_multi_valuer() {
                                    return Err(invalid(
                                        name,
                                        pos,
                                        "the field is not multi-valued",
                                    ));
                                }
                                let n = to_slice(value).len() as i64;
                                return Ok(Resolved::lit(Lit::Int(n)));
                            }
                            "lower" => {
                                let s = go_string(value);
                                return Ok(Resolved {
                                    params: 1,
                                    empty_param: s.is_empty(),
                                    ..Resolved::plain(Node::Lower(Box::new(Node::Param(
                                        Param::Text(s),
                                    ))))
                                });
                            }
                            "changed" => {
                                let text = format!(
                                    "@request.body.{fname}:isset = true && @request.body.{fname} != {fname}"
                                );
                                let expr = crate::parser::parse(&text)?
                                    .ok_or_else(|| invalid(name, pos, "empty"))?;
                                let node = self.expr(scope, &expr)?;
                                return Ok(Resolved {
                                    fallback: Fallback::Disabled,
                                    ..Resolved::plain(node)
                                });
                            }
                            _ => {}
                        }
                    }
                }
            }
            return self.static_request(scope, &props[1..], name, pos);
        }

        self.props(scope, r, &props, name, pos)
    }

    fn static_request(
        &mut self,
        scope: &Scope<'_>,
        path: &[&str],
        token: &str,
        pos: usize,
    ) -> Result<Resolved> {
        let Some((last, init)) = path.split_last() else {
            return Err(unknown(token, pos, "empty request path"));
        };
        let (last, modifier) = split_modifier(last, token, pos)?;
        let mut keys: Vec<&str> = init.to_vec();
        keys.push(last);

        let req = scope.request;
        // Extract the value; `Err` = the key path does not exist.
        let found: std::result::Result<Option<Value>, ()> = match keys.as_slice() {
            ["context"] => Ok(Some(Value::String(req.context.clone()))),
            ["method"] => Ok(Some(Value::String(req.method.clone()))),
            ["query", k] => req
                .query
                .get(*k)
                .map(|v| Some(Value::String(v.clone())))
                .ok_or(()),
            ["headers", k] => req
                .headers
                .get(k)
                .map(|v| Some(Value::String(v.to_string())))
                .ok_or(()),
            ["body", rest @ ..] if !rest.is_empty() => {
                nested(&req.body, rest).map(|v| Some(v.clone()))
            }
            ["auth", rest @ ..] if !rest.is_empty() => match &req.auth {
                None => Ok(None),
                Some(a) => nested(a, rest).map(|v| Some(v.clone())),
            },
            _ => Err(()),
        };
        if modifier == "isset" {
            return Ok(Resolved::lit(if found.is_ok() {
                Lit::True
            } else {
                Lit::False
            }));
        }
        if !modifier.is_empty() && modifier != "lower" {
            return Err(invalid(
                token,
                pos,
                format!("modifier {modifier:?} is not supported here"),
            ));
        }
        let number_field = scope
            .base
            .field(last)
            .is_some_and(|f| f.field_type == FieldType::Number);
        let param = match found {
            Ok(Some(v)) => json_value_param(&v, number_field),
            _ => None,
        };
        let Some(param) = param else {
            return Ok(Resolved::lit(Lit::Null));
        };
        let mut res = Resolved::param(param);
        if modifier == "lower" {
            res.node = Node::Lower(Box::new(res.node));
        }
        Ok(res)
    }

    fn request_auth(
        &mut self,
        scope: &Scope<'_>,
        mut r: Runner,
        props: &[&str],
        name: &str,
        pos: usize,
    ) -> Result<Resolved> {
        let Some(auth) = &scope.request.auth else {
            return Ok(Resolved::lit(Lit::Null));
        };
        const PLAIN: [&str; 6] = [
            "id",
            "collectionId",
            "collectionName",
            "email",
            "emailVisibility",
            "verified",
        ];
        if props.len() == 3 && PLAIN.contains(&props[2]) {
            return self.static_request(scope, &props[1..], name, pos);
        }
        let Some(coll) = scope
            .request
            .auth_collection()
            .and_then(|c| scope.schema.collection(c))
        else {
            return Ok(Resolved::lit(Lit::Null));
        };
        let auth_id = auth
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let alias_name = format!("__auth_{}{}", coll.name, scope.suffix);
        let id_field = FieldInfo::new("id", FieldType::Text);
        let alias = self.main_alias(&alias_name);
        let on = Node::Cmp(
            CmpOp::Eq,
            Box::new(col(alias, &id_field)),
            Box::new(Node::Param(Param::Text(auth_id.clone()))),
        );
        self.register_join(scope, JoinSource::Table(coll.name.clone()), alias, Some(on))?;
        let mm_name = format!("__mm_{alias_name}");
        let mm = self.fresh_alias(mm_name.clone());
        r.mm_joins.push(Join {
            source: JoinSource::Table(coll.name.clone()),
            alias: mm,
            on: Some(Node::Cmp(
                CmpOp::Eq,
                Box::new(col(mm, &id_field)),
                Box::new(Node::Param(Param::Text(auth_id))),
            )),
        });
        r.mm_alias = mm;
        r.mm_alias_name = mm_name;
        r.coll = coll;
        r.alias = alias;
        r.alias_name = alias_name;
        self.props(scope, r, &props[2..], name, pos)
    }

    fn body_each(
        &mut self,
        scope: &Scope<'_>,
        mut r: Runner,
        field: &FieldInfo,
        value: Option<&Value>,
        name: &str,
        pos: usize,
    ) -> Result<Resolved> {
        if !field.field_type.is_multi_valuer() {
            return Err(invalid(name, pos, "the field is not multi-valued"));
        }
        let raw = go_json(&Value::Array(to_slice(value)));
        let je_name = format!("__dataEach_je_{}{}", field.name, scope.suffix);
        let je = self.main_alias(&je_name);
        self.register_join(
            scope,
            JoinSource::JsonEachParam(Param::Text(raw.clone())),
            je,
            None,
        )?;
        let res = Resolved::plain(Node::JeValue(je));
        if field.multiple {
            r.multi = true;
        }
        if r.multi {
            let je2 = self.fresh_alias(format!("__mm_{je_name}"));
            r.mm_joins.push(Join {
                source: JoinSource::JsonEachParam(Param::Text(raw)),
                alias: je2,
                on: None,
            });
            r.mm_value = Some(Node::JeValue(je2));
        }
        self.finish(r, res, scope.base_alias)
    }

    fn body_relation(
        &mut self,
        scope: &Scope<'_>,
        mut r: Runner,
        field: &FieldInfo,
        props: &[&str],
        name: &str,
        pos: usize,
    ) -> Result<Resolved> {
        let target = field
            .relation_collection_id
            .as_deref()
            .and_then(|id| scope.schema.collection(id))
            .ok_or_else(|| unknown(name, pos, "the relation's collection does not exist"))?;
        let mut ids: Vec<String> = Vec::new();
        for v in to_slice(scope.request.body.get(&field.name)) {
            let s = go_string(Some(&v));
            if !s.is_empty() && !ids.contains(&s) {
                ids.push(s);
            }
        }
        if ids.is_empty() {
            return Ok(Resolved::lit(Lit::Null));
        }
        if ids.len() > MAX_PARAMS / 4 {
            return Err(Error::Limit {
                what: "number of submitted relation ids",
                limit: MAX_PARAMS / 4,
            });
        }
        let id_field = FieldInfo::new("id", FieldType::Text);
        let params: Vec<Param> = ids.into_iter().map(Param::Text).collect();
        let alias_name = format!("__data_{}_{}{}", target.name, field.name, scope.suffix);
        let alias = self.main_alias(&alias_name);
        let on = Node::InList(Box::new(col(alias, &id_field)), params.clone());
        self.register_join(
            scope,
            JoinSource::Table(target.name.clone()),
            alias,
            Some(on),
        )?;
        if field.multiple {
            r.multi = true;
        }
        let mm_name = format!("__mm_{alias_name}");
        let mm = self.fresh_alias(mm_name.clone());
        r.mm_joins.push(Join {
            source: JoinSource::Table(target.name.clone()),
            alias: mm,
            on: Some(Node::InList(Box::new(col(mm, &id_field)), params)),
        });
        r.mm_alias = mm;
        r.mm_alias_name = mm_name;
        r.coll = target;
        r.alias = alias;
        r.alias_name = alias_name;
        self.props(scope, r, &props[3..], name, pos)
    }

    /// Walks `a.b.c`: relations and back-relations join, JSON fields turn the
    /// rest into a JSON path, the last segment is finalised.
    fn props(
        &mut self,
        scope: &Scope<'_>,
        mut r: Runner,
        props: &[&str],
        name: &str,
        pos: usize,
    ) -> Result<Resolved> {
        let total = props.len();
        for (i, prop) in props.iter().enumerate() {
            let coll = r.coll.clone();
            if i == total - 1 {
                return self.finalize(scope, r, &coll, prop, name, pos);
            }
            let field = coll.field(prop).cloned();
            if let Some(f) = &field
                && f.hidden
                && !scope.allow_hidden()
            {
                return Err(invalid(
                    name,
                    pos,
                    format!("field {prop:?} is not filterable"),
                ));
            }
            if let Some(f) = &field
                && matches!(f.field_type, FieldType::Json | FieldType::GeoPoint)
            {
                let path = json_path(&props[i + 1..]);
                let res = Resolved {
                    fallback: Fallback::Disabled,
                    ..Resolved::plain(Node::JsonExtract(Box::new(col(r.alias, f)), path.clone()))
                };
                if r.multi {
                    r.mm_value = Some(Node::JsonExtract(Box::new(col(r.mm_alias, f)), path));
                }
                return self.finish(r, res, scope.base_alias);
            }
            if i >= MAX_RELATION_DEPTH {
                return Err(Error::Limit {
                    what: "relation depth",
                    limit: MAX_RELATION_DEPTH,
                });
            }
            let Some(field) = field else {
                match self.back_relation(scope, &mut r, prop, name, pos)? {
                    true => continue,
                    false => return Ok(Resolved::lit(Lit::Null)),
                }
            };
            if field.field_type != FieldType::Relation {
                return Err(invalid(
                    name,
                    pos,
                    format!("field {prop:?} is not a relation"),
                ));
            }
            let target = field
                .relation_collection_id
                .as_deref()
                .and_then(|id| scope.schema.collection(id))
                .ok_or_else(|| {
                    unknown(
                        name,
                        pos,
                        format!("the collection of {prop:?} does not exist"),
                    )
                })?;
            // `rel.id` on a single relation is the column itself: no join.
            if !field.multiple && i == total - 2 && props[i + 1] == "id" {
                return self.finalize(scope, r, &coll, &field.name, name, pos);
            }
            self.join_relation(scope, &mut r, &field, target)?;
        }
        Err(unknown(name, pos, "empty path"))
    }

    /// Follows relation `field` of the current collection to `target`: joins it in the main
    /// query (through `json_each` when it holds several ids) and in the multi-match
    /// sub-query, and moves the runner onto it.
    fn join_relation(
        &mut self,
        scope: &Scope<'_>,
        r: &mut Runner,
        field: &FieldInfo,
        target: Arc<CollectionInfo>,
    ) -> Result<()> {
        let id_field = FieldInfo::new("id", FieldType::Text);
        let new_name = format!("{}_{}{}", r.alias_name, field.name, scope.suffix);
        let new_alias = self.main_alias(&new_name);
        if !field.multiple {
            let on = Node::Cmp(
                CmpOp::Eq,
                Box::new(col(new_alias, &id_field)),
                Box::new(col(r.alias, field)),
            );
            self.register_join(
                scope,
                JoinSource::Table(target.name.clone()),
                new_alias,
                Some(on),
            )?;
        } else {
            let je = self.main_alias(&format!("__je_{new_name}"));
            self.register_join(
                scope,
                JoinSource::JsonEachCol(col(r.alias, field)),
                je,
                None,
            )?;
            let on = Node::Cmp(
                CmpOp::Eq,
                Box::new(col(new_alias, &id_field)),
                Box::new(Node::JeValue(je)),
            );
            self.register_join(
                scope,
                JoinSource::Table(target.name.clone()),
                new_alias,
                Some(on),
            )?;
            r.multi = true;
        }
        let mm_name = format!("{}_{}", r.mm_alias_name, field.name);
        let mm = self.fresh_alias(mm_name.clone());
        if !field.multiple {
            r.mm_joins.push(Join {
                source: JoinSource::Table(target.name.clone()),
                alias: mm,
                on: Some(Node::Cmp(
                    CmpOp::Eq,
                    Box::new(col(mm, &id_field)),
                    Box::new(col(r.mm_alias, field)),
                )),
            });
        } else {
            let je2 = self.fresh_alias(format!("{mm_name}_je"));
            r.mm_joins.push(Join {
                source: JoinSource::JsonEachCol(col(r.mm_alias, field)),
                alias: je2,
                on: None,
            });
            r.mm_joins.push(Join {
                source: JoinSource::Table(target.name.clone()),
                alias: mm,
                on: Some(Node::Cmp(
                    CmpOp::Eq,
                    Box::new(col(mm, &id_field)),
                    Box::new(Node::JeValue(je2)),
                )),
            });
        }
        r.coll = target;
        r.alias = new_alias;
        r.alias_name = new_name;
        r.mm_alias = mm;
        r.mm_alias_name = mm_name;
        Ok(())
    }

    /// `<collection>_via_<field>`. Returns `Ok(false)` when the path resolves to
    /// NULL (missing pieces under `@request.*`).
    fn back_relation(
        &mut self,
        scope: &Scope<'_>,
        r: &mut Runner,
        prop: &str,
        name: &str,
        pos: usize,
    ) -> Result<bool> {
        let missing = |reason: String| -> Result<bool> {
            if r.nullify_missing {
                Ok(false)
            } else {
                Err(unknown(name, pos, reason))
            }
        };
        // Greedy like `^(\w+)_via_(\w+)$`: the last `_via_` with text on both sides.
        let split = prop
            .match_indices("_via_")
            .map(|(i, _)| i)
            .filter(|&i| i > 0 && i + 5 < prop.len())
            .last();
        let Some(at) = split.filter(|_| is_word(prop)) else {
            return missing(format!("unknown field {prop:?}"));
        };
        let (coll_name, back_name) = (&prop[..at], &prop[at + 5..]);
        let Some(back_coll) = scope.schema.collection(coll_name) else {
            return missing(format!("no collection {coll_name:?} for {prop:?}"));
        };
        let Some(back_field) = back_coll.field(back_name).cloned() else {
            return missing(format!("no field {back_name:?} in {coll_name:?}"));
        };
        if back_field.field_type != FieldType::Relation {
            return missing(format!("{back_name:?} is not a relation"));
        }
        if back_field.hidden && !scope.allow_hidden() {
            return Err(invalid(
                name,
                pos,
                format!("field {back_name:?} is not filterable"),
            ));
        }
        let points_here = back_field
            .relation_collection_id
            .as_deref()
            .is_some_and(|c| c == r.coll.id || c == r.coll.name);
        if !points_here {
            return missing(format!("{back_name:?} does not point to {:?}", r.coll.name));
        }
        let id_field = FieldInfo::new("id", FieldType::Text);
        let new_name = format!("{}_{}{}", r.alias_name, prop, scope.suffix);
        let new_alias = self.main_alias(&new_name);
        let on = if !back_field.multiple {
            Node::Cmp(
                CmpOp::Eq,
                Box::new(col(new_alias, &back_field)),
                Box::new(col(r.alias, &id_field)),
            )
        } else {
            let je = self.fresh_alias(format!("__je_{new_name}"));
            Node::InJsonEach(
                Box::new(col(r.alias, &id_field)),
                Box::new(col(new_alias, &back_field)),
                je,
            )
        };
        self.register_join(
            scope,
            JoinSource::Table(back_coll.name.clone()),
            new_alias,
            Some(on),
        )?;

        if back_field.multiple {
            r.multi = true;
        } else if !r.multi {
            r.multi = !back_coll.unique_fields.contains(&back_field.name);
        }
        let mm_name = format!("{}_{}{}", r.mm_alias_name, prop, scope.suffix);
        let mm = self.fresh_alias(mm_name.clone());
        let mm_on = if !back_field.multiple {
            Node::Cmp(
                CmpOp::Eq,
                Box::new(col(mm, &back_field)),
                Box::new(col(r.mm_alias, &id_field)),
            )
        } else {
            let je2 = self.fresh_alias(format!("__je_{mm_name}"));
            Node::InJsonEach(
                Box::new(col(r.mm_alias, &id_field)),
                Box::new(col(mm, &back_field)),
                je2,
            )
        };
        r.mm_joins.push(Join {
            source: JoinSource::Table(back_coll.name.clone()),
            alias: mm,
            on: Some(mm_on),
        });
        r.coll = back_coll;
        r.alias = new_alias;
        r.alias_name = new_name;
        r.mm_alias = mm;
        r.mm_alias_name = mm_name;
        Ok(true)
    }

    fn finalize(
        &mut self,
        scope: &Scope<'_>,
        mut r: Runner,
        coll: &CollectionInfo,
        prop: &str,
        name: &str,
        pos: usize,
    ) -> Result<Resolved> {
        let (fname, modifier) = split_modifier(prop, name, pos)?;
        let Some(field) = coll.field(fname).cloned() else {
            if r.nullify_missing {
                return Ok(Resolved::lit(Lit::Null));
            }
            return Err(unknown(
                name,
                pos,
                format!("no field {fname:?} in {:?}", coll.name),
            ));
        };
        if field.hidden && !scope.allow_hidden() {
            return Err(invalid(
                name,
                pos,
                format!("field {fname:?} is not filterable"),
            ));
        }
        let multi_valuer = field.field_type.is_multi_valuer();

        if modifier == "length" && multi_valuer {
            let res = Resolved::plain(Node::JsonArrayLength(Box::new(col(r.alias, &field))));
            if r.multi {
                r.mm_value = Some(Node::JsonArrayLength(Box::new(col(r.mm_alias, &field))));
            }
            return self.finish(r, res, scope.base_alias);
        }

        if modifier == "each" && multi_valuer {
            let je_name = format!("__je_{}_{}{}", r.alias_name, field.name, scope.suffix);
            let je = self.main_alias(&je_name);
            self.register_join(
                scope,
                JoinSource::JsonEachCol(col(r.alias, &field)),
                je,
                None,
            )?;
            let res = Resolved::plain(Node::JeValue(je));
            if field.multiple {
                r.multi = true;
            }
            if r.multi {
                let je2_name = format!("__je_{}_{}{}", r.mm_alias_name, field.name, scope.suffix);
                let je2 = self.fresh_alias(je2_name);
                r.mm_joins.push(Join {
                    source: JoinSource::JsonEachCol(col(r.mm_alias, &field)),
                    alias: je2,
                    on: None,
                });
                r.mm_value = Some(Node::JeValue(je2));
            }
            return self.finish(r, res, scope.base_alias);
        }

        let mut res = Resolved::plain(col(r.alias, &field));
        if r.multi {
            r.mm_value = Some(col(r.mm_alias, &field));
        }
        if field.name == "email"
            && !scope.allow_hidden()
            && coll.collection_type == CollectionType::Auth
        {
            res.email_guard = Some(r.alias);
        }
        if field.field_type == FieldType::Json {
            res.fallback = Fallback::Disabled;
            res.node = Node::JsonExtract(Box::new(res.node), Vec::new());
            if let Some(v) = r.mm_value.take() {
                r.mm_value = Some(Node::JsonExtract(Box::new(v), Vec::new()));
            }
        }
        if modifier == "lower" {
            res.node = Node::Lower(Box::new(res.node));
            if let Some(v) = r.mm_value.take() {
                r.mm_value = Some(Node::Lower(Box::new(v)));
            }
        }
        self.finish(r, res, scope.base_alias)
    }
}

/// Walks a key path through request data: object keys, array indexes.
fn nested<'v>(
    map: &'v serde_json::Map<String, Value>,
    keys: &[&str],
) -> std::result::Result<&'v Value, ()> {
    let (first, rest) = keys.split_first().ok_or(())?;
    let mut v = map.get(*first).ok_or(())?;
    for k in rest {
        v = match v {
            Value::Object(m) => m.get(*k).ok_or(())?,
            Value::Array(a) => a.get(k.parse::<usize>().map_err(|_| ())?).ok_or(())?,
            _ => return Err(()),
        };
    }
    Ok(v)
}

/// `=` / `!=` with PocketBase's rule that NULL and `''` are the same value.
fn equal_expr(equal: bool, l: &Resolved, r: &Resolved) -> Node {
    let (eq_op, null_eq_op) = if equal {
        (CmpOp::Eq, CmpOp::Is)
    } else {
        (CmpOp::IsNot, CmpOp::IsNot)
    };
    let b = |n: &Node| Box::new(n.clone());
    let empty = || Box::new(Node::Lit(Lit::EmptyText));

    if l.fallback == Fallback::Disabled || r.fallback == Fallback::Disabled {
        return Node::Cmp(null_eq_op, b(&l.node), b(&r.node));
    }
    let (le, re) = (l.is_empty(), r.is_empty());
    if le && re {
        return Node::Cmp(eq_op, empty(), empty());
    }
    if l.known_non_empty() || r.known_non_empty() {
        let left = if le { empty() } else { b(&l.node) };
        let right = if re { empty() } else { b(&r.node) };
        return Node::Cmp(eq_op, left, right);
    }
    let join = |a: Node, c: Node| {
        if equal {
            Node::Or(vec![a, c])
        } else {
            Node::And(vec![a, c])
        }
    };
    if le {
        return join(
            Node::Cmp(eq_op, empty(), b(&r.node)),
            Node::IsNull(b(&r.node), !equal),
        );
    }
    if re {
        return join(
            Node::Cmp(eq_op, b(&l.node), empty()),
            Node::IsNull(b(&l.node), !equal),
        );
    }
    Node::Cmp(
        eq_op,
        Box::new(Node::Coalesce(b(&l.node))),
        Box::new(Node::Coalesce(b(&r.node))),
    )
}

/// The JSON path of `a.b.0` under a JSON field: each segment cleaned to `[A-Za-z0-9_]`,
/// numbers as array indexes.
fn json_path(props: &[&str]) -> Vec<PathSeg> {
    props
        .iter()
        .map(|p| {
            let clean: String = p
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if clean.parse::<i64>().is_ok() {
                PathSeg::Index(clean)
            } else {
                PathSeg::Key(clean)
            }
        })
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escaping_follows_pocketbase() {
        assert_eq!(escape_like("a_b"), "a\\_b");
        assert_eq!(escape_like("a\\_b"), "a\\_b");
        assert_eq!(escape_like("50\\"), "50\\\\");
        assert_eq!(like_pattern(&Param::Text("Hel%".into())), "Hel%");
        assert_eq!(like_pattern(&Param::Text("sure_".into())), "%sure\\_%");
        assert_eq!(like_pattern(&Param::Text("5\\%".into())), "%5\\%%");
        assert_eq!(like_pattern(&Param::Real(5.0)), "%5%");
        assert_eq!(like_pattern(&Param::Bool(true)), "%true%");
    }

    #[test]
    fn identifier_shapes() {
        assert!(allowed_shape("title"));
        assert!(allowed_shape("author.name:lower"));
        assert!(allowed_shape("@request.auth.id"));
        assert!(allowed_shape("@collection.users:u.name"));
        assert!(!allowed_shape("@request.foo"));
        assert!(!allowed_shape("@collection.users"));
        assert!(!allowed_shape("#x"));
        assert!(!allowed_shape("tïtle"));
    }
}
