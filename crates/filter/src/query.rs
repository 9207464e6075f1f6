//! The public face of compilation: [`Filter`] (parsed text) and [`Query`]
//! (compiled conditions, joins and order for one base collection).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::ast::Expr;
use crate::compile::{Access, Builder};
use crate::error::{Error, Result};
use crate::ir::{
    CmpOp, Env, Join, JoinSource, Node, Renderer, Row, collect_rows, quote_ident, truthy,
};
use crate::reads::RequestReads;
use crate::request::RequestContext;
use crate::schema::{CollectionInfo, SchemaSource};
use crate::sort::SortItem;
use crate::value::SqlValue;

/// A parsed filter or rule. Parse once, compile per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    source: String,
    expr: Option<Expr>,
    reads: RequestReads,
}

impl Filter {
    /// Parses `text`; an empty text is the filter that matches everything.
    pub fn parse(text: &str) -> Result<Filter> {
        let expr = crate::parser::parse(text)?;
        Ok(Filter {
            source: text.to_string(),
            reads: RequestReads::of(expr.as_ref()),
            expr,
        })
    }

    /// Wraps a tree built in code.
    pub fn from_expr(expr: Expr) -> Filter {
        Filter {
            source: expr.to_string(),
            reads: RequestReads::of(Some(&expr)),
            expr: Some(expr),
        }
    }

    /// The syntax tree, `None` for an empty filter.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// The request values its compiled form depends on (see [`RequestReads::key`]).
    pub fn reads(&self) -> &RequestReads {
        &self.reads
    }

    /// The text the filter was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// SQL produced for a [`Query`]. Parameters are `?` placeholders, bound in the
/// order of `params`, which follows the text of `joins`, then `where_clause`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// The quoted base table, e.g. `"posts"` (also its alias).
    pub table: String,
    /// `LEFT JOIN ...` clauses separated by spaces; empty when none.
    pub joins: String,
    /// The WHERE condition; `TRUE` when there is none.
    pub where_clause: String,
    /// The ORDER BY list without the keyword; empty when none.
    pub order_by: String,
    pub params: Vec<SqlValue>,
    /// Joins can repeat base rows: select DISTINCT (PocketBase does).
    pub distinct: bool,
}

impl SqlFilter {
    /// A full `SELECT <columns> FROM ...` statement.
    pub fn select(&self, columns: &str) -> String {
        let mut sql = String::from("SELECT ");
        if self.distinct {
            sql.push_str("DISTINCT ");
        }
        sql.push_str(columns);
        sql.push_str(" FROM ");
        sql.push_str(&self.table);
        if !self.joins.is_empty() {
            sql.push(' ');
            sql.push_str(&self.joins);
        }
        sql.push_str(" WHERE ");
        sql.push_str(&self.where_clause);
        if !self.order_by.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&self.order_by);
        }
        sql
    }
}

/// Conditions, joins and ordering compiled for one base collection.
///
/// Add every condition of one request (the collection's rule, then the client
/// filter) to the same `Query`, so joins are shared and aliases never clash.
/// Request values are bound while compiling: a `Query` belongs to one request.
#[derive(Debug, Clone)]
pub struct Query {
    b: Builder,
}

impl Query {
    /// A query over `collection` (name or id).
    pub fn new(schema: &dyn SchemaSource, collection: &str) -> Result<Query> {
        let base = schema
            .collection(collection)
            .ok_or_else(|| Error::UnknownCollection(collection.to_string()))?;
        Ok(Query::for_collection(base))
    }

    /// A query over an already looked-up collection.
    pub fn for_collection(base: Arc<CollectionInfo>) -> Query {
        Query {
            b: Builder::new(base),
        }
    }

    /// The base collection.
    pub fn collection(&self) -> &CollectionInfo {
        &self.b.base
    }

    /// ANDs `filter` into the query. An empty filter adds nothing.
    pub fn and_where(
        &mut self,
        schema: &dyn SchemaSource,
        request: &RequestContext,
        filter: &Filter,
        access: Access,
    ) -> Result<&mut Self> {
        if access == Access::Client {
            // PocketBase tests the raw text, so even a string literal that
            // mentions these is refused; mirror it exactly.
            if filter.source.contains("@collection.") {
                return Err(Error::SuperuserOnly("@collection."));
            }
            if filter.source.contains("@request.") {
                return Err(Error::SuperuserOnly("@request."));
            }
        }
        if let Some(expr) = &filter.expr {
            self.b.add_where(schema, request, expr, access)?;
        }
        self.check_params()?;
        Ok(self)
    }

    /// Appends ORDER BY items (at most [`crate::sort::MAX_SORT_ITEMS`] in total).
    pub fn order_by(
        &mut self,
        schema: &dyn SchemaSource,
        request: &RequestContext,
        items: &[SortItem],
        access: Access,
    ) -> Result<&mut Self> {
        for item in items {
            if access == Access::Client
                && (item.name.contains("@collection.") || item.name.contains("@request."))
            {
                return Err(Error::SuperuserOnly(
                    if item.name.contains("@collection.") {
                        "@collection."
                    } else {
                        "@request."
                    },
                ));
            }
            if self.b.orders.len() >= crate::sort::MAX_SORT_ITEMS {
                return Err(Error::Limit {
                    what: "number of sort items",
                    limit: crate::sort::MAX_SORT_ITEMS,
                });
            }
            self.b
                .add_order(schema, request, &item.name, item.descending, access)?;
        }
        Ok(self)
    }

    fn check_params(&self) -> Result<()> {
        if self.to_sql().params.len() > crate::compile::MAX_PARAMS {
            return Err(Error::Limit {
                what: "number of bound parameters",
                limit: crate::compile::MAX_PARAMS,
            });
        }
        Ok(())
    }

    /// True when the query joins other tables (relations, back-relations,
    /// `@collection`, the auth collection, list-rule gates). Such a query can
    /// only run in SQLite. `json_each` over the record's own columns is not a
    /// join in this sense.
    pub fn needs_join(&self) -> bool {
        self.b
            .joins
            .iter()
            .any(|j| matches!(j.source, JoinSource::Table(_)))
            || self
                .b
                .wheres
                .iter()
                .any(|w| w.sql_only() == Some("the rule joins other rows"))
    }

    /// True when [`Query::matches`] can decide this query without SQLite.
    pub fn evaluable_in_memory(&self) -> bool {
        !self.needs_join() && self.b.wheres.iter().all(|w| w.sql_only().is_none())
    }

    /// The sort as plain columns of the base table, `(column, descending)` in order, when every
    /// item is one (no joined field, expression, `@random` or `@rowid`); `None` otherwise and
    /// when there is no sort.
    pub fn column_order(&self) -> Option<Vec<(&str, bool)>> {
        if self.b.orders.is_empty() {
            return None;
        }
        self.b
            .orders
            .iter()
            .map(|(node, desc)| match node {
                Node::Col { alias: 0, field } => Some((field.name.as_str(), *desc)),
                _ => None,
            })
            .collect()
    }

    /// The base table's columns the conditions compare with a value, for index advice:
    /// `(equalities, ranges)`, each column once, from the conditions every matching row must
    /// meet (the top-level AND terms; an OR of alternatives gives none).
    pub fn compared_columns(&self) -> (Vec<&str>, Vec<&str>) {
        fn walk<'a>(node: &'a Node, eq: &mut Vec<&'a str>, range: &mut Vec<&'a str>) {
            match node {
                Node::And(items) => items.iter().for_each(|i| walk(i, eq, range)),
                Node::Cmp(op, l, r) => {
                    let column = match (&**l, &**r) {
                        (Node::Col { alias: 0, field }, Node::Param(_) | Node::Lit(_))
                        | (Node::Param(_) | Node::Lit(_), Node::Col { alias: 0, field }) => {
                            field.name.as_str()
                        }
                        _ => return,
                    };
                    let list = match op {
                        CmpOp::Eq | CmpOp::Is => eq,
                        CmpOp::Lt | CmpOp::Lte | CmpOp::Gt | CmpOp::Gte => range,
                        CmpOp::IsNot => return,
                    };
                    if !list.contains(&column) {
                        list.push(column);
                    }
                }
                _ => {}
            }
        }
        let (mut eq, mut range) = (Vec::new(), Vec::new());
        for term in &self.b.wheres {
            walk(term, &mut eq, &mut range);
        }
        range.retain(|c| !eq.contains(c));
        (eq, range)
    }

    /// The SQL for this query.
    pub fn to_sql(&self) -> SqlFilter {
        let mut r = Renderer {
            aliases: &self.b.aliases,
            sql: String::new(),
            params: Vec::new(),
        };
        for (i, j) in self.b.joins.iter().enumerate() {
            if i > 0 {
                r.sql.push(' ');
            }
            r.join(j);
        }
        let joins = std::mem::take(&mut r.sql);
        match self.b.wheres.as_slice() {
            [] => r.sql.push_str("TRUE"),
            [one] => r.node(one),
            many => r.node(&Node::And(many.to_vec())),
        }
        let where_clause = std::mem::take(&mut r.sql);
        for (i, (node, desc)) in self.b.orders.iter().enumerate() {
            if i > 0 {
                r.sql.push_str(", ");
            }
            r.node(node);
            if !matches!(node, Node::Random) {
                r.sql.push_str(if *desc { " DESC" } else { " ASC" });
            }
        }
        SqlFilter {
            table: quote_ident(&self.b.base.name),
            joins,
            where_clause,
            order_by: r.sql,
            params: r.params,
            distinct: !self.b.joins.is_empty(),
        }
    }

    /// Decides the conditions for one record (API-shaped JSON: `id`, field
    /// values, multi-value fields as arrays) without SQLite. Gives the same
    /// answer as running [`Query::to_sql`] against PocketBase's table layout.
    /// Fails with [`Error::NeedsSql`] when [`Query::evaluable_in_memory`] is false.
    pub fn matches(&self, record: &Map<String, Value>) -> Result<bool> {
        // Only main-query table joins are checked up front; SQL-only nodes
        // (strftime, joined sub-queries) fail with `NeedsSql` when reached.
        if self
            .b
            .joins
            .iter()
            .any(|j| matches!(j.source, JoinSource::Table(_)))
        {
            return Err(Error::NeedsSql("the rule joins other rows"));
        }
        // One slot per alias. Most rules need only a handful: keep those on
        // the stack, so evaluating a record allocates nothing up front.
        const INLINE_ROWS: usize = 8;
        let mut inline: [Row<'_>; INLINE_ROWS] = std::array::from_fn(|_| Row::Unbound);
        let mut heap = Vec::new();
        let n = self.b.aliases.len();
        let rows: &mut [Row<'_>] = if n <= INLINE_ROWS {
            &mut inline[..n]
        } else {
            heap.resize(n, Row::Unbound);
            &mut heap
        };
        rows[0] = Row::Record(record);
        let mut env = Env {
            rows,
            record,
            visited: 0,
        };
        let wheres: &[Node] = &self.b.wheres;
        let joins: &[Join] = &self.b.joins;
        collect_rows(&mut env, joins, &mut |env| {
            for w in wheres {
                if truthy(&w.eval(env)?) != Some(true) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }
}

/// Compiles one rule or filter for `collection` in a single call.
pub fn compile(
    schema: &dyn SchemaSource,
    collection: &str,
    text: &str,
    request: &RequestContext,
    access: Access,
) -> Result<Query> {
    let filter = Filter::parse(text)?;
    let mut q = Query::new(schema, collection)?;
    q.and_where(schema, request, &filter, access)?;
    Ok(q)
}
