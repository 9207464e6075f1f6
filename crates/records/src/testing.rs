//! What the crate's unit tests share: a database holding collections' tables.

use warren_schema::Collection;
use warren_store::{Database, Migration, Options};

/// Opens `data.db` in `dir` with the tables of `collections`, then runs `seed` on the writer.
pub(crate) async fn database(
    dir: &std::path::Path,
    collections: &[&Collection],
    seed: impl FnOnce(&warren_store::sql::Connection) -> crate::Result<()> + Send + 'static,
) -> Database {
    open(dir, collections, seed, false).await
}

/// [`database`] held by this process alone, as a tenant's is (`Options::exclusive`): it has a
/// data version.
pub(crate) async fn exclusive_database(
    dir: &std::path::Path,
    collections: &[&Collection],
    seed: impl FnOnce(&warren_store::sql::Connection) -> crate::Result<()> + Send + 'static,
) -> Database {
    open(dir, collections, seed, true).await
}

async fn open(
    dir: &std::path::Path,
    collections: &[&Collection],
    seed: impl FnOnce(&warren_store::sql::Connection) -> crate::Result<()> + Send + 'static,
    exclusive: bool,
) -> Database {
    let db = Database::open(
        dir.join("data.db"),
        Options {
            migrations: &[] as &[Migration],
            exclusive,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let statements: Vec<String> = collections
        .iter()
        .flat_map(|c| warren_schema::ddl::create_statements(c))
        .collect();
    db.write(move |c| {
        for statement in statements {
            c.execute_batch(&statement)?;
        }
        seed(c)
    })
    .await
    .unwrap();
    db
}
