//! What each command does.

use std::time::Duration;

use anyhow::{Context, bail};
use warren_control_plane::operator::{OperatorToken, Origin};
use warren_control_plane::tenants::UrlScheme;
use warren_control_plane::{ControlPlane, Directory, Tenants, open_control_db, tenants_root};
use warren_tenant::{Registry, RegistryConfig};

use crate::app;
use crate::cli::{Cli, Command, Global, Serve, SuperuserCommand, TenantCommand};

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => serve_platform(&cli.global, &serve).await,
        Command::Tenant(command) => tenant(&cli.global, command).await,
        Command::Superuser(command) => superuser(&cli.global, command).await,
    }
}

fn urls(global: &Global) -> UrlScheme {
    UrlScheme {
        scheme: "http".into(),
        domain: global.domain.clone(),
        port: Some(global.http.port()),
    }
}

async fn tenants(global: &Global) -> anyhow::Result<Tenants> {
    let db = open_control_db(&global.data_dir).await.with_context(|| {
        format!(
            "opening the control database in {}",
            global.data_dir.display()
        )
    })?;
    Ok(Tenants::new(db, tenants_root(&global.data_dir)))
}

async fn serve_platform(global: &Global, serve: &Serve) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    let from_env = std::env::var("WARREN_OPERATOR_TOKEN").ok();
    let (operator_token, origin) = OperatorToken::load(&global.data_dir, from_env.as_deref())?;
    if origin == Origin::Generated {
        println!(
            "Operator token (shown once, kept in {}/operator-token): {}",
            global.data_dir.display(),
            operator_token.reveal()
        );
    }
    let registry = Registry::new(RegistryConfig {
        root: tenants_root(&global.data_dir),
        max_open: serve.max_open_tenants.max(1),
        idle_timeout: Duration::from_secs(serve.idle_timeout.max(1)),
    });
    let closer = registry.clone();
    let draining = registry.clone();
    let directory = Directory::start(tenants.clone(), Duration::from_millis(200), move |id| {
        closer.close(id)
    })
    .await?;
    let mut urls = urls(global);
    let listener = tokio::net::TcpListener::bind(global.http)
        .await
        .with_context(|| format!("binding {}", global.http))?;
    let local = listener.local_addr()?;
    urls.port = Some(local.port());
    let control = ControlPlane {
        tenants,
        registry,
        directory,
        operator_token,
        urls,
    };
    let api = warren_api::ApiState {
        oauth_loopback: serve.oauth_insecure_loopback,
        files: warren_files::Files::new(warren_files::FilesConfig {
            default_s3: default_bucket(&serve.s3),
            thumb_workers: 0,
        }),
        ..warren_api::ApiState::new(warren_auth::Passwords::default(), serve.smtp_url.clone())
    };
    let router = app::router(control, &global.domain, api);
    // Tests and scripts wait for this exact line to know the server is ready.
    println!(
        "Warren listening on http://{local} (platform domain {})",
        global.domain
    );
    let shutdown = async move {
        shutdown_signal().await;
        // Realtime streams never end by themselves: end them so the drain can finish.
        draining.close_all();
    };
    warren_edge::serve(listener, router, shutdown).await?;
    tracing::info!("Warren stopped");
    Ok(())
}

/// The platform-wide bucket from the `--s3-*` flags, when an endpoint and a bucket are given.
fn default_bucket(flags: &crate::cli::S3Flags) -> Option<warren_files::S3Config> {
    let (endpoint, bucket) = (flags.endpoint.clone()?, flags.bucket.clone()?);
    Some(warren_files::S3Config {
        enabled: true,
        bucket,
        region: flags.region.clone(),
        endpoint,
        access_key: flags.access_key.clone(),
        secret: flags.secret.clone(),
        force_path_style: true,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}

async fn tenant(global: &Global, command: TenantCommand) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    match command {
        TenantCommand::Create { slug } => {
            let tenant = tenants.create(&slug).await.map_err(explain)?;
            println!("{}", urls(global).tenant_url(&tenant.slug));
        }
        TenantCommand::List => {
            for tenant in tenants.list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    tenant.slug,
                    tenant.status,
                    tenant.created,
                    urls(global).tenant_url(&tenant.slug)
                );
            }
        }
        TenantCommand::Delete { slug } => {
            tenants.delete(&slug).await.map_err(explain)?;
            println!("Deleted tenant {slug}.");
        }
        TenantCommand::Import { slug, from } => {
            let (tenant, copied) = tenants.import(&slug, &from).await.map_err(explain)?;
            println!(
                "Imported {} collections and {} files from {} into {}",
                copied.collections,
                copied.files,
                from.display(),
                urls(global).tenant_url(&tenant.slug)
            );
        }
        TenantCommand::Export { slug, to } => {
            let copied = tenants.export(&slug, &to).await.map_err(explain)?;
            println!(
                "Exported {slug} ({} collections, {} files) to {}",
                copied.collections,
                copied.files,
                to.display()
            );
        }
    }
    Ok(())
}

async fn superuser(global: &Global, command: SuperuserCommand) -> anyhow::Result<()> {
    let SuperuserCommand::Upsert {
        slug,
        email,
        password,
    } = command;
    let tenants = tenants(global).await?;
    let Some(info) = tenants.find(&slug).await? else {
        bail!("there is no tenant {slug:?}")
    };
    let db = warren_tenant::open_database(tenants.root(), &info.id).await?;
    let passwords = warren_auth::Passwords::default();
    let record = warren_tenant::superusers::upsert(&db, &passwords, &email, &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("Successfully saved superuser {:?} of {slug}.", record.email);
    Ok(())
}

/// Turns a control-plane error into a message for the terminal.
fn explain(e: warren_control_plane::Error) -> anyhow::Error {
    match e {
        warren_control_plane::Error::Invalid(_, reason) => anyhow::anyhow!(reason),
        warren_control_plane::Error::NotFound => anyhow::anyhow!("there is no such tenant"),
        other => anyhow::anyhow!(other),
    }
}
