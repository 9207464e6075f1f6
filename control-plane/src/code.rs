//! Deploying a project's code (`pb_hooks`, `pb_migrations`, `pb_public`) from an uploaded
//! tar.gz, what is deployed, and the code as a tar.gz download; for the operator API and the
//! console alike.

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use warren_tenant::code::{self, FolderSummary, Limits, Staging};

use crate::backups::Backups;
use crate::tenants::{TenantInfo, Tenants};
use crate::transfers::{Export, Upload};
use crate::{Error, Result};

/// One code folder as callers see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeFolder {
    /// `pb_hooks`, `pb_migrations` or `pb_public`.
    pub name: String,
    /// Regular files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When it was last deployed (RFC 3339, UTC).
    pub deployed: String,
}

/// A project's code: the folders it has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Code {
    /// The existing code folders, in the order hooks, migrations, public.
    pub folders: Vec<CodeFolder>,
}

/// What a deploy replaced, and the code afterwards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    /// The folders this deploy replaced (the others were kept).
    pub deployed: Vec<CodeFolder>,
    /// All code folders of the project now.
    pub code: Code,
}

fn folder(summary: &FolderSummary) -> CodeFolder {
    CodeFolder {
        name: summary.folder.name().to_string(),
        files: summary.files,
        bytes: summary.bytes,
        deployed: summary
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| warren_backup::format_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            .unwrap_or_default(),
    }
}

/// The limits of a deploy into `tenant`: the default bounds, and the plan's storage quota
/// as the most bytes when it is smaller.
pub fn limits(tenant: &TenantInfo) -> Limits {
    let mut limits = Limits::default();
    if tenant.limits.storage_bytes > 0 {
        limits.max_bytes = limits.max_bytes.min(tenant.limits.storage_bytes);
    }
    limits
}

fn dir(tenants: &Tenants, tenant: &TenantInfo) -> PathBuf {
    warren_tenant::tenant_dir(tenants.root(), &tenant.id)
}

fn joined(e: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(e.to_string()))
}

/// The code `tenant` has now.
pub async fn summary(tenants: &Tenants, tenant: &TenantInfo) -> Result<Code> {
    let dir = dir(tenants, tenant);
    let found = tokio::task::spawn_blocking(move || code::summary(&dir))
        .await
        .map_err(joined)??;
    Ok(Code {
        folders: found.iter().map(folder).collect(),
    })
}

/// Deploys the tar.gz `upload` into `tenant`: the folders at its top replace the project's,
/// each whole; an unsafe or oversized archive, or hooks the `registry`'s check refuses,
/// change nothing. After a deploy the tenant's next request runs the new hooks (open
/// connections stay). A shipped tenant's deploy returns once the folders it replaced are
/// stored in the backup target too (see [`Backups::keep_state`]): a node that takes the
/// tenant over runs this code.
pub async fn deploy(
    tenants: &Tenants,
    registry: &warren_tenant::Registry,
    backups: &Backups,
    tenant: &TenantInfo,
    upload: &Upload,
) -> Result<Deployed> {
    registry.check_here(&tenant.id)?;
    let dir = dir(tenants, tenant);
    let archive = upload.path().to_path_buf();
    let limits = limits(tenant);
    let check = registry.code_check();
    let migrations = migrations_run(registry, &tenant.id);
    let (deployed, now) = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&archive)?;
        let mut staging = Staging::new(&dir, limits)?;
        staging.add_tar_gz(std::io::BufReader::new(file))?;
        let check = check.map(|check| move |hooks: &std::path::Path| check.check(hooks));
        let check = check.as_ref().map(|c| c as code::HooksCheck<'_>);
        let deployed = match &migrations {
            Some(migrate) => staging.commit_migrating(check, migrate)?,
            None => staging.commit(check)?,
        };
        let now = code::summary(&dir)?;
        Ok::<_, warren_tenant::Error>((deployed, now))
    })
    .await
    .map_err(joined)??;
    if deployed.iter().any(|f| f.folder == code::Folder::Hooks) {
        registry.reload_code(&tenant.id);
    }
    let names: Vec<&str> = deployed.iter().map(|f| f.folder.name()).collect();
    backups
        .keep_state(tenant, warren_backup::state::Items::folders(&names))
        .await?;
    tracing::info!(slug = %tenant.slug, folders = deployed.len(), "code deployed");
    Ok(Deployed {
        deployed: deployed.iter().map(folder).collect(),
        code: Code {
            folders: now.iter().map(folder).collect(),
        },
    })
}

/// What applies a deploy's staged migrations to tenant `id` (opened through `registry`), on
/// the blocking thread the deploy runs on; `None` when the node runs no code.
fn migrations_run(
    registry: &warren_tenant::Registry,
    id: &str,
) -> Option<
    impl Fn(&std::path::Path) -> std::result::Result<Vec<String>, String> + Send + Sync + 'static,
> {
    let loader = registry.code_loader()?;
    let (registry, id) = (registry.clone(), id.to_string());
    let handle = tokio::runtime::Handle::current();
    Some(move |dir: &std::path::Path| {
        handle.block_on(async {
            let tenant = registry.get(&id).await.map_err(|e| e.to_string())?;
            loader.migrate(&tenant, dir).await
        })
    })
}

/// `tenant`'s code as a tar.gz (its folders at the top, the shape a deploy takes), written to
/// scratch space and opened for streaming.
pub async fn download(tenants: &Tenants, tenant: &TenantInfo) -> Result<Export> {
    let dir = dir(tenants, tenant);
    let path = tenants.root().join(format!(
        ".export-{}.tar.gz",
        warren_secrets::random::record_id()
    ));
    let out = path.clone();
    let packed = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create_new(&out)?;
        let mut writer = std::io::BufWriter::new(file);
        code::pack_tar_gz(&dir, &mut writer)?;
        std::io::Write::flush(&mut writer)?;
        Ok::<_, warren_tenant::Error>(())
    })
    .await
    .map_err(joined)?;
    let opened = match packed {
        Ok(()) => tokio::fs::File::open(&path).await.map_err(Error::Io),
        Err(e) => Err(e.into()),
    };
    // The open file keeps its content readable after its name is gone.
    let _ = tokio::fs::remove_file(&path).await;
    let file = opened?;
    let bytes = file.metadata().await.map_err(Error::Io)?.len();
    Ok(Export { file, bytes })
}
