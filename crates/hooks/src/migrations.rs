//! A tenant's `pb_migrations/*.js` (`migrate(up, down)`), run as PocketBase runs them: the
//! files not yet in `_migrations` (`file` primary key, `applied` in unix microseconds) in
//! file-name order, all of them in one transaction; a failure rolls every one back and names
//! the file. `down` reverts the last applied ones, newest first, also in one transaction.
//!
//! Each run gets a fresh sandbox of its own (the prelude, then the migration files), never the
//! tenant's loaded hooks, with a longer CPU budget than a request: [`MIGRATION_TIME`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rquickjs::Object;
use serde_json::Value;
use warren_tenant::Tenant;

use crate::native::{self, Inside, Shared};
use crate::router::Routes;
use crate::sandbox::Sandbox;
use crate::{Engine, MAX_FILES};

/// How long one run of migrations may take (CPU of each file's function, and the whole
/// transaction holding the tenant's writer).
pub const MIGRATION_TIME: Duration = Duration::from_secs(10);

/// Which way to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Apply every pending migration.
    Up,
    /// Revert the last `n` applied migrations.
    Down(usize),
}

/// The `*.js` files of `dir` (by name, in name order); empty when there is no such folder.
fn migration_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") && entry.file_type().map_err(|e| e.to_string())?.is_file() {
            files.push((name, entry.path()));
        }
    }
    if files.len() > MAX_FILES * 16 {
        return Err(format!(
            "pb_migrations holds more than {} files",
            MAX_FILES * 16
        ));
    }
    files.sort();
    Ok(files)
}

/// The applied migrations, newest first (`applied` then `file`, descending).
async fn applied(tenant: &Tenant) -> Result<Vec<String>, String> {
    tenant
        .db()
        .read(|c| {
            let mut stmt =
                c.prepare("SELECT file FROM _migrations ORDER BY applied DESC, file DESC")?;
            let files = stmt
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, warren_store::Error>(files)
        })
        .await
        .map_err(|e| e.to_string())
}

impl Engine {
    /// Runs the migrations in `dir` on `tenant` in `direction`; returns the files applied (or
    /// reverted), in the order they ran. `Err` is the message PocketBase would give
    /// (`failed to apply migration FILE: ...`); nothing of the run stands then.
    pub async fn migrate(
        &self,
        tenant: &Tenant,
        dir: &Path,
        direction: Direction,
    ) -> Result<Vec<String>, String> {
        let files = {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || migration_files(&dir))
                .await
                .map_err(|e| e.to_string())??
        };
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let done = applied(tenant).await?;
        let chosen: Vec<(String, PathBuf)> = match direction {
            Direction::Up => {
                let done: HashSet<&String> = done.iter().collect();
                files
                    .into_iter()
                    .filter(|(name, _)| !done.contains(name))
                    .collect()
            }
            Direction::Down(n) => {
                let mut chosen = Vec::new();
                for name in done.iter().take(n) {
                    let Some(file) = files.iter().find(|(f, _)| f == name) else {
                        return Err(format!(
                            "failed to revert migration {name}: its file is not in pb_migrations"
                        ));
                    };
                    chosen.push(file.clone());
                }
                chosen
            }
        };
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let permit = self.permit().await;
        let engine = self.clone();
        let tenant = tenant.clone();
        let dir = dir.to_path_buf();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run(&engine, &tenant, &dir, &chosen, direction, handle)
        })
        .await
        .map_err(|e| format!("the migrations failed: {e}"))?
    }
}

/// Loads `files` into a fresh sandbox and runs their `up` (or `down`) functions in one
/// transaction, recording each in `_migrations`.
fn run(
    engine: &Engine,
    tenant: &Tenant,
    dir: &Path,
    files: &[(String, PathBuf)],
    direction: Direction,
    handle: tokio::runtime::Handle,
) -> Result<Vec<String>, String> {
    let shared = Arc::new(Shared {
        hooks_dir: dir.canonicalize().map_err(|e| e.to_string())?,
        tenant: Mutex::new(Some(tenant.clone())),
        handle,
        services: engine.services(),
        routes: Mutex::new(Routes::default()),
        listens: Mutex::new(Default::default()),
        loading: AtomicBool::new(false),
        outside: engine.outside(),
    });
    let mut limits = engine.limits();
    limits.cpu = MIGRATION_TIME;
    let sandbox = Sandbox::new(limits)?;
    let _inside = Inside::enter();
    let installed = shared.clone();
    sandbox
        .call(move |ctx| {
            native::install(ctx, installed)?;
            ctx.eval::<(), _>(crate::code::PRELUDE)?;
            let runner: Object = ctx.globals().get("__warrenMigrations")?;
            let enable: rquickjs::Function = runner.get("enable")?;
            enable.call::<_, ()>(())
        })
        .map_err(|f| format!("the engine's prelude failed: {f}"))?;
    // Which registered migration each file is (a file calling `migrate` twice keeps its last).
    let mut indexes = Vec::with_capacity(files.len());
    for (name, path) in files {
        let source = native::read_source(path)?;
        let filename = format!("/pb_migrations/{name}");
        let count = sandbox
            .call(|ctx| {
                let mut options = rquickjs::context::EvalOptions::default();
                options.filename = Some(filename.clone());
                options.strict = false;
                ctx.eval_with_options::<(), _>(source, options)?;
                let runner: Object = ctx.globals().get("__warrenMigrations")?;
                let count: rquickjs::Function = runner.get("count")?;
                count.call::<_, usize>(())
            })
            .map_err(|f| format!("failed to load migration {name}: {f}"))?;
        if count == 0 {
            return Err(format!(
                "failed to load migration {name}: it calls no migrate()"
            ));
        }
        indexes.push(count - 1);
    }
    let _scope = crate::transaction::Scope::new(MIGRATION_TIME);
    let tx_call = |method: &str, args: &[Value]| {
        crate::transaction::call(&shared, tenant, method, args)
            .unwrap_or_else(|| Err(crate::app::refuse(500, "no transaction")))
            .map_err(|r| r.message)
    };
    tx_call("__txBegin", &[])?;
    let (verb, way) = match direction {
        Direction::Up => ("apply", "up"),
        Direction::Down(_) => ("revert", "down"),
    };
    let mut done = Vec::with_capacity(files.len());
    for ((name, _), index) in files.iter().zip(indexes) {
        let answer = sandbox.call(|ctx| {
            let runner: Object = ctx.globals().get("__warrenMigrations")?;
            let run: rquickjs::Function = runner.get("run")?;
            let answer: rquickjs::String = run.call((index, way))?;
            answer.to_string()
        });
        let failed = match answer {
            Ok(text) => serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string)),
            Err(failure) => Some(failure.to_string()),
        };
        if let Some(error) = failed {
            let _ = tx_call("__txEnd", &[Value::Bool(false)]);
            return Err(format!("failed to {verb} migration {name}: {error}"));
        }
        let recorded = crate::transaction::record_migration(name, direction == Direction::Up);
        if let Err(error) = recorded {
            let _ = tx_call("__txEnd", &[Value::Bool(false)]);
            return Err(format!(
                "failed to save {verb}ed migration info for {name}: {error}"
            ));
        }
        done.push(name.clone());
    }
    tx_call("__txEnd", &[Value::Bool(true)])?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sandbox with the prelude and no tenant (as a deploy's check has).
    fn prepared() -> Sandbox {
        let shared = Arc::new(Shared {
            hooks_dir: std::env::temp_dir(),
            tenant: Mutex::new(None),
            handle: tokio::runtime::Handle::current(),
            services: None,
            routes: Mutex::new(Routes::default()),
            listens: Mutex::new(Default::default()),
            loading: AtomicBool::new(true),
            outside: crate::Outside::default(),
        });
        let sandbox = Sandbox::new(crate::Limits::default()).unwrap();
        sandbox
            .call(move |ctx| {
                native::install(ctx, shared)?;
                ctx.eval::<(), _>(crate::code::PRELUDE)
            })
            .unwrap();
        sandbox
    }

    fn eval(sandbox: &Sandbox, source: &'static str) -> Result<String, String> {
        sandbox
            .call(move |ctx| ctx.eval::<String, _>(source))
            .map_err(|f| f.to_string())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn fields_lists_replace_move_and_remove_as_pocketbase_does() {
        let sandbox = prepared();
        let names = eval(
            &sandbox,
            r#"
            const c = new Collection({ name: "posts", fields: [
              { id: "t1", name: "title", type: "text" },
              { id: "n1", name: "views", type: "number" },
            ] });
            c.fields.add(new TextField({ id: "t1", name: "title", max: 5 }));
            c.fields.addAt(0, new BoolField({ name: "flag" }));
            c.fields.add(new NumberField({ name: "views", onlyInt: true }));
            c.fields.addAt(1, new EditorField({ id: "e1", name: "body" }));
            c.fields.removeByName("flag");
            unmarshal({ viewRule: "", fields: c.fields.all().concat([{ id: "x", name: "extra", type: "json" }]) }, c);
            c.fields.removeById("x");
            const json = c.toJSON();
            [json.type, json.viewRule, json.listRule === null, c.fields.getById("n1").onlyInt,
             c.fields.getByName("title").type + c.fields.getByName("title").max,
             json.fields.map((f) => f.id + ":" + f.name).join(","),
             c.fields.length, c.fields[0].name, Array.isArray(c.fields.filter((f) => f.type === "text"))].join("|")
            "#,
        )
        .unwrap();
        assert_eq!(
            names,
            "base||true|true|text5|e1:body,t1:title,n1:views|3|body|true"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn migrate_and_transactions_need_their_context() {
        let sandbox = prepared();
        let outside = eval(&sandbox, "migrate(() => {}); 'ran'").unwrap_err();
        assert!(outside.contains("pb_migrations"), "{outside}");
        let no_tenant = eval(&sandbox, "$app.runInTransaction(() => {}); 'ran'").unwrap_err();
        assert!(no_tenant.contains("$app is not available"), "{no_tenant}");
        let refused = eval(&sandbox, "$app.db().newQuery('x').bind({}); 'ran'").unwrap_err();
        assert!(refused.contains("query.bind"), "{refused}");
    }
}
