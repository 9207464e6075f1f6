//! What each command does.

use std::time::Duration;

use anyhow::{Context, bail};
use warren_control_plane::backups::Restored;
use warren_control_plane::developers::Developers;
use warren_control_plane::operator::{OperatorToken, Origin};
use warren_control_plane::tenants::UrlScheme;
use warren_control_plane::{
    ControlPlane, Directory, Lifecycle, Tenants, open_control_db, tenants_root,
};
use warren_tenant::{Registry, RegistryConfig};

use crate::app;
use crate::cli::AccountCommand;
use crate::cli::{BackupArgs, BackupCommand, BackupFlags};
use crate::cli::{
    Cli, Command, DomainCommand, Global, PlanCommand, Serve, SuperuserCommand, TenantCommand,
};

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(serve) => serve_platform(&cli.global, &serve).await,
        Command::Tenant(command) => tenant(&cli.global, command).await,
        Command::Superuser(command) => superuser(&cli.global, command).await,
        Command::Domain(command) => domain(&cli.global, command).await,
        Command::Account(command) => account(&cli.global, command).await,
        Command::Usage { slug, from, to } => usage(&cli.global, &slug, from, to).await,
        Command::Plan(PlanCommand::List) => list_plans(&cli.global).await,
        Command::Backup(args) => backup(&cli.global, args).await,
    }
}

/// How a CLI command spells tenant URLs (see [`crate::serving::tenant_urls`]); says on stderr
/// when no server runs.
fn urls(global: &Global) -> anyhow::Result<UrlScheme> {
    let (urls, note) = crate::serving::tenant_urls(global)?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(urls)
}

async fn tenants(global: &Global) -> anyhow::Result<Tenants> {
    let db = open_control_db(&global.data_dir).await.with_context(|| {
        format!(
            "opening the control database in {}",
            global.data_dir.display()
        )
    })?;
    Ok(Tenants::new(db, tenants_root(&global.data_dir)).with_dns_resolver(global.dns_resolver))
}

async fn serve_platform(global: &Global, serve: &Serve) -> anyhow::Result<()> {
    let cluster_settings = serve.cluster.settings().map_err(anyhow::Error::msg)?;
    let mut data_lock = crate::datalock::take_for_serve(&global.data_dir)?;
    // In a cluster with a backup target the control database is shipped like a tenant's, so
    // whichever node leads serves the latest one.
    let ships_control = cluster_settings.is_some() && serve.backup.backup_url.is_some();
    let tenants = if ships_control {
        let db = crate::serve_cluster::control_db::open(&global.data_dir)
            .await
            .context("opening the cluster's control database")?;
        Tenants::new(db, tenants_root(&global.data_dir)).with_dns_resolver(global.dns_resolver)
    } else {
        tenants(global).await?
    };
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
    // What closed tenants' databases freed goes back to the system once closes pause.
    warren_heap::spawn_trimmer();
    let closer = registry.clone();
    let draining = registry.clone();
    // Closes what requests that arrived during the drain opened again, once nothing is served.
    let last_close = registry.clone();
    let directory = Directory::start(tenants.clone(), Duration::from_millis(200), move |id| {
        closer.close(id)
    })
    .await?;
    // Tenant URLs: the configured public URL, else the listeners this server answers on.
    let public = match &global.public_url {
        Some(url) => {
            Some(UrlScheme::from_public_url(url, &global.domain).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(global.http)
        .await
        .with_context(|| format!("binding {}", global.http))?;
    let local = listener.local_addr()?;
    let mut urls = UrlScheme {
        scheme: "http".into(),
        domain: global.domain.clone(),
        port: Some(local.port()),
    };
    data_lock.describe(&format!("served by http://{local}"))?;
    let https = match serve.tls.https {
        Some(addr) => {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            urls.scheme = "https".into();
            urls.port = Some(tcp.local_addr()?.port());
            Some(tcp)
        }
        None => None,
    };
    let urls = public.unwrap_or(urls);
    // CLI commands that change a tenant's code or collections on disk signal this server.
    crate::serving::watch_changes(&global.data_dir, registry.clone())?;
    // CLI commands on this data directory print the URLs this server answers on.
    let _served = crate::serving::record(&global.data_dir, &urls)?;
    let metering = warren_control_plane::metering::Metering::new(
        tenants.db().clone(),
        registry.clone(),
        !serve.no_metering,
    );
    metering.start(serve.metering_interval);
    let final_flush = metering.clone();
    let (backups, _tasks) = start_backups(global, serve, &tenants, &registry)?;
    let shipping = backups.clone();
    let trusted_peers =
        warren_api::TrustedPeers::new(serve.trusted_proxies.clone()).map_err(|bad| {
            anyhow::anyhow!("--trusted-proxies: {bad:?} is not an IP address or CIDR subnet")
        })?;
    let tenant_backups = warren_tenant::backups::Backups::new(registry.clone());
    let crons = warren_tenant::cron::Scheduler::new(
        registry.clone(),
        tenant_backups.clone(),
        serve.cron_workers,
    );
    crons.set_admission(std::sync::Arc::new(crate::crons::CronAdmission {
        directory: directory.clone(),
        registry: registry.clone(),
    }));
    crons.start(serve.cron_minute);
    let api = warren_api::ApiState {
        oauth_loopback: serve.oauth_insecure_loopback,
        auto_index: serve.auto_index,
        auth_limit_ip: serve.auth_limit_ip,
        trusted_peers,
        files: warren_files::Files::new(warren_files::FilesConfig {
            default_s3: default_bucket(&serve.s3),
            thumb_workers: 0,
        }),
        mailer: mailer(global, serve),
        backups: tenant_backups,
        crons,
        ..warren_api::ApiState::new(warren_secrets::Passwords::default(), serve.smtp_url.clone())
    };
    let banner = crate::banner::lines(
        &urls,
        &global.data_dir,
        origin,
        api.mailer.relay().as_deref(),
    );
    // Tenants' pb_hooks run in the node's JavaScript engine, writing through the same pipeline
    // as the API.
    let engine = std::sync::Arc::new(
        warren_hooks::Engine::new(
            warren_hooks::Limits::default(),
            warren_hooks::POOL_SIZE,
            Some(warren_api::services(&api)),
        )
        .with_outside(warren_hooks::Outside {
            mailer: Some(api.mailer.clone()),
            allow_private_network: serve.hooks_allow_private_network,
        }),
    );
    registry.set_code_loader(engine.clone());
    // Deploys load the staged hooks in a scratch sandbox of the same engine first.
    registry.set_code_check(engine);
    let transfers =
        warren_control_plane::transfers::Transfers::new(tenants.clone(), registry.clone());
    transfers.remove_leftovers();
    let control = ControlPlane {
        console: Developers::new(tenants.db().clone(), tenants.clone(), api.mailer.clone())
            .with_dashboard_link_ttl(serve.dashboard_link_ttl),
        transfers,
        tenants,
        registry,
        directory,
        operator_token,
        urls,
        metering,
        backups,
    };
    let edge_control = control.clone();
    let relay_control = control.clone();
    // Cluster mode: this node joins, and follows the cluster's directory, before it answers.
    let cluster = match &cluster_settings {
        Some(settings) => {
            let node = crate::serve_cluster::ClusterNode::join(settings, &global.data_dir)
                .await
                .context("joining the cluster")?;
            control
                .registry
                .set_locality(std::sync::Arc::new(node.owners(
                    &control.urls.domain,
                    warren_operator::router(control.clone()),
                )));
            fail_over_through(&node, &control, &global.data_dir);
            node.start_relay(&control);
            tokio::spawn(node.clone().run_leader(control.clone()));
            tokio::spawn(node.clone().run_eager_failover());
            if settings.rebalance {
                tokio::spawn(node.clone().run_rebalancer(control.clone()));
            }
            if settings.place_new {
                control.tenants.set_placer(std::sync::Arc::new(
                    crate::serve_cluster::DirectPlacer::new(&node, &control.urls.domain),
                ));
                tokio::spawn(node.clone().run_placer(control.clone()));
            }
            Some(node)
        }
        None => None,
    };
    let console = console(&control, &api, global, serve).await?;
    if let Some(node) = &cluster {
        console.set_elsewhere(std::sync::Arc::new(node.owners(
            &control.urls.domain,
            warren_operator::router(control.clone()),
        )));
    }
    let router = app::router(control, console, &global.domain, api, cluster.clone());
    if let Some(tcp) = https {
        let served = serve_https(
            global,
            serve,
            edge_control,
            listener,
            tcp,
            router,
            draining,
            &banner,
            cluster.clone(),
        )
        .await;
        last_close.close_all();
        finish_serving(&last_close, &shipping, &final_flush).await;
        if let Some(cluster) = &cluster {
            cluster.flush_relay(&relay_control, RELAY_AT_SHUTDOWN).await;
            cluster.leave().await;
        }
        served?;
        return lease_check(cluster.as_deref());
    }
    // Tests and scripts wait for this exact line to know the server is ready.
    println!(
        "Warren listening on http://{local} (platform domain {})",
        global.domain
    );
    for line in &banner {
        println!("{line}");
    }
    let stop = stop_signal(cluster.clone());
    let shutdown = async move {
        stop.await;
        // Realtime streams never end by themselves: end them so the drain can finish.
        draining.close_all();
    };
    warren_edge::serve_with_streams(listener, router, delivery(), shutdown).await?;
    // A request that arrived while the server drained (a peer's, forwarded) may have opened a
    // tenant again after the first close: close it, so its shipping ends and the wait below
    // does not run to its limit while this node still holds its lease.
    last_close.close_all();
    finish_serving(&last_close, &shipping, &final_flush).await;
    if let Some(cluster) = &cluster {
        cluster.flush_relay(&relay_control, RELAY_AT_SHUTDOWN).await;
        cluster.leave().await;
    }
    tracing::info!("Warren stopped");
    lease_check(cluster.as_deref())
}

/// Lets cluster node `node` take tenants over through the backup target, when there is one:
/// it restores a tenant it claims whose data is not here (or is older than the target's),
/// and its shippers label what they ship with the generation of its claim. Without a target,
/// tenants stay on the node holding their data, and a warning says so.
fn fail_over_through(
    node: &std::sync::Arc<crate::serve_cluster::ClusterNode>,
    control: &ControlPlane,
    data_dir: &std::path::Path,
) {
    let Some(target) = control.backups.target() else {
        tracing::warn!(
            "cluster mode without a backup target (--backup-url): tenants cannot fail over or move; a tenant whose node is gone answers 503 until that node is back"
        );
        tracing::warn!(
            "cluster mode without a backup target (--backup-url): the control database is not shipped; a new leader serves its own, without the accounts and tenants made on the last one"
        );
        return;
    };
    if control.tenants.db().commit_log().is_some() {
        node.set_shipped_control(std::sync::Arc::new(
            crate::serve_cluster::ShippedControl::new(
                control.tenants.db().clone(),
                warren_control_plane::cluster_control_dir(data_dir),
                target.clone(),
            ),
        ));
    }
    node.set_restorer(std::sync::Arc::new(crate::serve_cluster::FromTarget {
        tenants_root: tenants_root(data_dir),
        target: target.clone(),
        registry: control.registry.clone(),
        backups: control.backups.clone(),
    }));
    match control.backups.shipping() {
        Some(shipping) => {
            let claims = node.clone();
            shipping.set_ownership(std::sync::Arc::new(move |tenant: &str| {
                claims.ownership_generation(tenant).unwrap_or(0)
            }));
        }
        None => tracing::warn!(
            "cluster mode without WAL shipping (--backup-wal-every 0): a tenant taken over restores its last snapshot only"
        ),
    }
}

/// Resolves at SIGINT/SIGTERM, or in cluster mode once this node's lease is gone (it can
/// serve nothing more; a supervisor restarting it makes it join again).
async fn stop_signal(cluster: Option<std::sync::Arc<crate::serve_cluster::ClusterNode>>) {
    match cluster {
        Some(cluster) => tokio::select! {
            _ = shutdown_signal() => {}
            _ = cluster.lease_lost() => {}
        },
        None => shutdown_signal().await,
    }
}

/// A node that stopped because its cluster lease expired ends with an error.
fn lease_check(cluster: Option<&crate::serve_cluster::ClusterNode>) -> anyhow::Result<()> {
    if cluster.is_some_and(|c| c.is_lost()) {
        bail!("this node's cluster lease expired; restart it to join the cluster again");
    }
    Ok(())
}

/// The node's backups started as the flags ask: leftovers removed, WAL shipping, the backup
/// schedule and restore drills (their tasks come back with them).
fn start_backups(
    global: &Global,
    serve: &Serve,
    tenants: &Tenants,
    registry: &Registry,
) -> anyhow::Result<(
    warren_control_plane::backups::Backups,
    [Option<tokio::task::JoinHandle<()>>; 2],
)> {
    let mut backups = backups(global, &serve.backup, tenants, Some(registry.clone()))?
        .with_file_bucket(default_bucket(&serve.s3));
    if let Some(every) = parse_duration(&serve.backup.backup_wal_every)? {
        backups.enable_shipping(every);
    }
    backups.remove_leftovers();
    let schedule = match parse_duration(&serve.backup.backup_every)? {
        Some(every) if backups.enabled() => {
            let policy = warren_control_plane::backups::FixedPolicy {
                every,
                retention: warren_control_plane::backups::Retention {
                    keep: serve.backup.backup_keep,
                    max_age: parse_duration(&serve.backup.backup_max_age)?,
                },
            };
            backups.start_schedule(
                std::sync::Arc::new(policy),
                (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            )
        }
        _ => None,
    };
    let drills = match parse_duration(&serve.drills.every)? {
        Some(every) => backups.start_drills(every, serve.drills.sample),
        None => None,
    };
    Ok((backups, [schedule, drills]))
}

/// How long a stopping cluster node tries to hand the leader the usage and backup runs it
/// still holds.
const RELAY_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// What a stopping server still owes: the request logs its closed tenants left, the WAL it
/// has not shipped and the usage it has not written.
async fn finish_serving(
    tenants: &Registry,
    shipping: &warren_control_plane::backups::Backups,
    metering: &warren_control_plane::metering::Metering,
) {
    if !tenants.write_closed_logs(Duration::from_secs(10)).await {
        tracing::warn!("request logs of closed tenants were not all written before shutdown");
    }
    if !shipping.wait_shipping(Duration::from_secs(10)).await {
        tracing::warn!("WAL shipping did not finish before shutdown");
    }
    if let Err(e) = metering.flush().await {
        tracing::warn!(error = %e, "flushing usage at shutdown failed");
    }
}

/// Serves HTTPS on `tcp` (the whole platform) and, on `plain`, ACME HTTP-01 answers and
/// redirects to HTTPS.
#[allow(clippy::too_many_arguments)]
async fn serve_https(
    global: &Global,
    serve: &Serve,
    control: ControlPlane,
    plain: tokio::net::TcpListener,
    tcp: tokio::net::TcpListener,
    router: warren_edge::App,
    draining: Registry,
    banner: &[String],
    cluster: Option<std::sync::Arc<crate::serve_cluster::ClusterNode>>,
) -> anyhow::Result<()> {
    let flags = &serve.tls;
    let acme = if flags.no_acme {
        None
    } else {
        let mut challenges = Vec::new();
        for name in &flags.acme_challenges {
            match warren_edge::Challenge::parse(name) {
                Some(challenge) => challenges.push(challenge),
                None => bail!("unknown ACME challenge type {name:?} (http-01, tls-alpn-01)"),
            }
        }
        Some(warren_edge::AcmeConfig {
            directory: flags.acme_directory.clone(),
            email: flags.acme_email.clone(),
            ca_root: flags.acme_ca_root.clone(),
            challenges,
            state_dir: global.data_dir.join("acme"),
            retry_base: Duration::from_secs(flags.acme_retry_base.max(1)),
        })
    };
    let operator_cert = match (&flags.tls_cert, &flags.tls_key) {
        (Some(cert), Some(key)) => Some(warren_edge::OperatorCert {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let settings = warren_edge::TlsSettings {
        data_dir: global.data_dir.clone(),
        domain: global.domain.clone(),
        operator_cert,
        acme,
        renew_check: Duration::from_secs(flags.acme_renew_check.max(1)),
    };
    let hosts = std::sync::Arc::new(crate::hosts::PlatformHosts::new(
        control,
        &global.domain,
        cluster.clone(),
    ));
    // In a cluster the ACME state is shared through etcd: one order per name, any node
    // answering the CA's challenge, every node serving every certificate.
    let shared = match &cluster {
        Some(cluster) => Some(cluster.acme_state()?),
        None => None,
    };
    let edge = warren_edge::Edge::start_with(settings, hosts, shared)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let (local, secure) = (plain.local_addr()?, tcp.local_addr()?);
    let plain_router = edge.plain_router(secure.port());
    // Peers forward to the plain listener (`--advertise`): their requests reach the platform.
    let plain_router = match &cluster {
        Some(cluster) => {
            crate::serve_cluster::peers_or(cluster.clone(), router.clone(), plain_router)
        }
        None => warren_edge::App::new(plain_router),
    };
    let listener = edge.listener(tcp)?;
    println!(
        "Warren listening on http://{local} (platform domain {})",
        global.domain
    );
    println!(
        "Warren listening on https://{secure} (platform domain {})",
        global.domain
    );
    for line in banner {
        println!("{line}");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal(cluster).await;
        draining.close_all();
        let _ = stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::try_join!(
        warren_edge::serve_with_streams(plain, plain_router, delivery(), until(stopped.clone())),
        warren_edge::serve_tls(listener, router, until(stopped)),
    )?;
    tracing::info!("Warren stopped");
    Ok(())
}

async fn domain(global: &Global, command: DomainCommand) -> anyhow::Result<()> {
    use warren_control_plane::domains;
    let tenants = tenants(global).await?;
    let show = |d: &domains::DomainInfo| {
        println!(
            "{}\t{}\tTXT {} = {}\t{}",
            d.domain,
            d.status,
            d.txt_name(),
            d.token,
            d.last_error
        )
    };
    match command {
        DomainCommand::Add { slug, domain } => {
            let added = domains::add(&tenants, &global.domain, &slug, &domain)
                .await
                .map_err(explain)?;
            show(&added);
        }
        DomainCommand::List { slug } => {
            for found in domains::list(&tenants, &slug).await.map_err(explain)? {
                show(&found);
            }
        }
        DomainCommand::Check { slug, domain } => {
            let checked = domains::check(&tenants, tenants.dns_resolver(), &slug, &domain)
                .await
                .map_err(explain)?;
            show(&checked);
            if checked.status != "verified" {
                bail!("{} is not verified yet", checked.domain);
            }
        }
        DomainCommand::Remove { slug, domain } => {
            let removed = domains::remove(&tenants, &slug, &domain)
                .await
                .map_err(explain)?;
            println!("Removed {}.", removed.domain);
        }
    }
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

/// The runtime open event streams move to, when the server started one.
fn delivery() -> Option<tokio::runtime::Handle> {
    warren_realtime::delivery::started().then(warren_realtime::delivery::handle)
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
            println!("{}", urls(global)?.tenant_url(&tenant.slug));
        }
        TenantCommand::List => {
            let urls = urls(global)?;
            for tenant in tenants.list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    tenant.slug,
                    tenant.status,
                    tenant.created,
                    urls.tenant_url(&tenant.slug)
                );
            }
        }
        TenantCommand::Delete { slug } => {
            Lifecycle::offline(tenants)
                .delete(&slug)
                .await
                .map_err(explain)?;
            println!("Deleted tenant {slug}.");
        }
        TenantCommand::Import {
            slug,
            from,
            progress,
            quiet,
        } => {
            let show = !quiet && (progress || std::io::IsTerminal::is_terminal(&std::io::stderr()));
            let printer = transfer_printer();
            let report = move |p: warren_tenant::transfer::Progress| {
                if show {
                    printer(p)
                }
            };
            // A tenant it replaces (one still as provisioning left it) is held closed.
            let replaced = tenants.find(&slug).await?.map(|info| info.id);
            let replaced_hold = match &replaced {
                Some(id) => hold(global, id, &slug).await?,
                None => None,
            };
            let (tenant, copied) = tenants
                .import_with(&slug, &from, &report)
                .await
                .map_err(explain)?;
            // Its pb_migrations not in the imported `_migrations` yet run now, as PocketBase
            // would run them at its next start.
            let dir = warren_tenant::tenant_dir(tenants.root(), &tenant.id);
            let migrations = warren_tenant::code::migrations_dir(&dir);
            if migrations.is_dir() {
                let _hold = match replaced.as_deref() == Some(tenant.id.as_str()) {
                    true => None,
                    false => hold(global, &tenant.id, &slug).await?,
                };
                let applied = match Offline::new(&tenants)
                    .migrate(&tenant.id, &migrations, warren_hooks::Direction::Up)
                    .await
                {
                    Ok(applied) => applied,
                    Err(e) => {
                        // The migrations rolled back whole; the import goes with them, as
                        // PocketBase would not start on this app either.
                        Lifecycle::offline(tenants.clone())
                            .delete(&slug)
                            .await
                            .map_err(explain)?;
                        bail!("the imported pb_migrations failed, so nothing was imported: {e}");
                    }
                };
                for file in applied {
                    println!("Applied {file}");
                }
            }
            drop(replaced_hold);
            println!(
                "Imported {} collections, {} files and {} code files from {} into {}",
                copied.collections,
                copied.files,
                copied.code_files,
                from.display(),
                urls(global)?.tenant_url(&tenant.slug)
            );
        }
        TenantCommand::Suspend { slug } => {
            Lifecycle::offline(tenants)
                .suspend(&slug)
                .await
                .map_err(explain)?;
            println!("Suspended tenant {slug}.");
        }
        TenantCommand::Resume { slug } => {
            Lifecycle::offline(tenants)
                .resume(&slug)
                .await
                .map_err(explain)?;
            println!("Resumed tenant {slug}.");
        }
        TenantCommand::Plan { slug, plan } => {
            Lifecycle::offline(tenants)
                .set_plan(&slug, &plan)
                .await
                .map_err(explain)?;
            println!("Tenant {slug} is on plan {plan}.");
        }
        TenantCommand::Secret { slug, action } => {
            use crate::cli::SecretCommand;
            use warren_control_plane::secrets;
            if tenants.find(&slug).await.map_err(explain)?.is_none() {
                bail!("there is no tenant {slug:?}")
            }
            match action {
                SecretCommand::Set { name, value } => {
                    secrets::set(&tenants, &slug, &name, &value)
                        .await
                        .map_err(explain)?;
                    println!("Secret {name} of {slug} is set.");
                }
                SecretCommand::Unset { name } => {
                    secrets::unset(&tenants, &slug, &name)
                        .await
                        .map_err(|e| match e {
                            warren_control_plane::Error::NotFound => {
                                anyhow::anyhow!("{slug} has no secret {name}")
                            }
                            other => explain(other),
                        })?;
                    println!("Secret {name} of {slug} is removed.");
                }
                SecretCommand::List => {
                    for name in secrets::list(&tenants, &slug).await.map_err(explain)?.names {
                        println!("{name}");
                    }
                }
            }
        }
        TenantCommand::Migrate {
            slug,
            direction,
            count,
        } => {
            let Some(info) = tenants.find(&slug).await? else {
                bail!("there is no tenant {slug:?}")
            };
            let dir = warren_tenant::tenant_dir(tenants.root(), &info.id);
            let migrations = warren_tenant::code::migrations_dir(&dir);
            let (direction, verb) = match direction.as_str() {
                "up" => (warren_hooks::Direction::Up, "Applied"),
                "down" => (
                    warren_hooks::Direction::Down(count.unwrap_or(1)),
                    "Reverted",
                ),
                other => bail!("unknown direction {other:?}: give up or down"),
            };
            let held = hold(global, &info.id, &slug).await?;
            let done = Offline::new(&tenants)
                .migrate(&info.id, &migrations, direction)
                .await
                .map_err(anyhow::Error::msg)?;
            if done.is_empty() {
                println!("No migrations to run.");
            }
            for file in &done {
                println!("{verb} {file}");
            }
            if verb == "Reverted" && !done.is_empty() {
                eprintln!(
                    "The reverted files stay in pb_migrations: a server starting on this data \
                     directory applies them again (as PocketBase does at its start) unless they \
                     are removed or changed."
                );
            }
            // A held tenant reads everything again as it reopens.
            if held.is_none()
                && !done.is_empty()
                && crate::serving::notify_changed(&global.data_dir, &info.id)?
            {
                eprintln!("The server running on this data directory reloads {slug}.");
            }
        }
        TenantCommand::Hold { slug, command } => {
            let Some(info) = tenants.find(&slug).await? else {
                bail!("there is no tenant {slug:?}")
            };
            let dir = warren_tenant::tenant_dir(tenants.root(), &info.id);
            let held = crate::holds::hold(&global.data_dir, &info.id).await?;
            match &held {
                Some(_) => eprintln!(
                    "{slug} is held closed (its requests get 503); its files are in {}",
                    dir.display()
                ),
                None => eprintln!(
                    "no server is running on {}: the files of {slug} are free, in {}",
                    global.data_dir.display(),
                    dir.display()
                ),
            }
            let status = match command.split_first() {
                Some((program, args)) => Some(
                    tokio::process::Command::new(program)
                        .args(args)
                        .current_dir(&dir)
                        .status()
                        .await
                        .with_context(|| format!("running {program}"))?,
                ),
                None if held.is_some() => {
                    eprintln!("Press Enter or Ctrl-C to release it.");
                    let enter = tokio::task::spawn_blocking(|| {
                        std::io::stdin().read_line(&mut String::new())
                    });
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = enter => {}
                    }
                    None
                }
                None => None,
            };
            if held.is_some() {
                drop(held);
                eprintln!("Released {slug}.");
            }
            if let Some(status) = status
                && !status.success()
            {
                bail!("the command ended with {status}");
            }
        }
        TenantCommand::Export { slug, to } => {
            let _hold = match tenants.find(&slug).await? {
                Some(info) => hold(global, &info.id, &slug).await?,
                None => None,
            };
            let copied = tenants.export(&slug, &to).await.map_err(explain)?;
            println!(
                "Exported {slug} ({} collections, {} files, {} code files) to {}",
                copied.collections,
                copied.files,
                copied.code_files,
                to.display()
            );
        }
        TenantCommand::Deploy {
            slug,
            hooks,
            migrations,
            public,
        } => {
            use warren_tenant::code::{Folder, Staging};
            let Some(info) = tenants.find(&slug).await? else {
                bail!("there is no tenant {slug:?}")
            };
            let given: Vec<(Folder, std::path::PathBuf)> = [
                (Folder::Hooks, hooks),
                (Folder::Migrations, migrations),
                (Folder::Public, public),
            ]
            .into_iter()
            .filter_map(|(folder, dir)| dir.map(|dir| (folder, dir)))
            .collect();
            if given.is_empty() {
                bail!("nothing to deploy: give --hooks, --migrations or --public");
            }
            let dir = warren_tenant::tenant_dir(tenants.root(), &info.id);
            let limits = warren_control_plane::code::limits(&info);
            // Migrations run on the tenant's database.
            let _hold = match given.iter().any(|(f, _)| *f == Folder::Migrations) {
                true => hold(global, &info.id, &slug).await?,
                false => None,
            };
            // The hooks must load in a scratch sandbox of the engine a server runs them in;
            // the migrations run on the tenant before anything is swapped in.
            let offline = Offline::new(&tenants);
            let engine = offline.engine.clone();
            let handle = tokio::runtime::Handle::current();
            let id = info.id.clone();
            let deployed = tokio::task::spawn_blocking(move || {
                use warren_tenant::hooks::CodeCheck;
                let mut staging = Staging::new(&dir, limits)?;
                for (folder, from) in &given {
                    staging.add_dir(*folder, from)?;
                }
                let check = |hooks: &std::path::Path| engine.check(hooks);
                let migrate = |migrations: &std::path::Path| {
                    handle.block_on(offline.migrate(&id, migrations, warren_hooks::Direction::Up))
                };
                staging.commit_migrating(Some(&check), &migrate)
            })
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            for folder in deployed {
                println!(
                    "Deployed {} to {slug}: {} files, {} bytes",
                    folder.folder.name(),
                    folder.files,
                    folder.bytes
                );
            }
            if crate::serving::notify_changed(&global.data_dir, &info.id)? {
                eprintln!("The server running on this data directory reloads {slug}.");
            }
        }
    }
    Ok(())
}

/// Holds tenant `id` (`slug`) closed on the server running on the data directory, if one
/// runs, until the returned hold drops (see [`crate::holds`]); says so on stderr.
async fn hold(global: &Global, id: &str, slug: &str) -> anyhow::Result<Option<crate::holds::Hold>> {
    let held = crate::holds::hold(&global.data_dir, id).await?;
    if held.is_some() {
        eprintln!("The server running on this data directory holds {slug} closed meanwhile.");
    }
    Ok(held)
}

/// A tenant's migrations run by the CLI, on the tenant's files (no server needed): the node's
/// engine and write pipeline over a registry of its own.
struct Offline {
    registry: warren_tenant::Registry,
    engine: std::sync::Arc<warren_hooks::Engine>,
}

impl Offline {
    fn new(tenants: &Tenants) -> Self {
        let registry = Registry::new(RegistryConfig {
            root: tenants.root().to_path_buf(),
            max_open: 4,
            idle_timeout: Duration::from_secs(3600),
        });
        let api = warren_api::ApiState::new(warren_secrets::Passwords::default(), None);
        let engine = std::sync::Arc::new(warren_hooks::Engine::new(
            warren_hooks::Limits::default(),
            warren_hooks::POOL_SIZE,
            Some(warren_api::services(&api)),
        ));
        Self { registry, engine }
    }

    /// Runs the migrations in `dir` on tenant `id`; the files applied or reverted.
    async fn migrate(
        &self,
        id: &str,
        dir: &std::path::Path,
        direction: warren_hooks::Direction,
    ) -> Result<Vec<String>, String> {
        let tenant = self.registry.get(id).await.map_err(|e| e.to_string())?;
        let done = self.engine.migrate(&tenant, dir, direction).await;
        drop(tenant);
        // Closed before the command's hold on the tenant ends (see `crate::holds`).
        let _ = self.registry.drain(id, Duration::from_secs(30)).await;
        done
    }
}

async fn superuser(global: &Global, command: SuperuserCommand) -> anyhow::Result<()> {
    let SuperuserCommand::Upsert {
        slug,
        email,
        password,
    } = command;
    if global.data_dir.join("cluster").is_dir() {
        // The tenant may be served by another node, and this copy of it stale.
        bail!(
            "{} belongs to a cluster node: set the superuser through the operator API instead \
             (PUT /v1/tenants/{slug}/superuser with {{\"email\", \"password\"}}), which \
             sets it on the node serving the tenant",
            global.data_dir.display()
        );
    }
    let tenants = tenants(global).await?;
    let Some(info) = tenants.find(&slug).await? else {
        bail!("there is no tenant {slug:?}")
    };
    let _hold = hold(global, &info.id, &slug).await?;
    let db = warren_tenant::open_database(tenants.root(), &info.id).await?;
    let passwords = warren_secrets::Passwords::default();
    let record = warren_tenant::superusers::upsert(&db, &passwords, &email, &password).await;
    db.close().await;
    let record = record.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("Successfully saved superuser {:?} of {slug}.", record.email);
    Ok(())
}

/// The platform relay from `--smtp-url`, or, without one, the outbox in the data directory.
fn mailer(global: &Global, serve: &Serve) -> warren_mail::Mailer {
    warren_mail::Mailer::new(serve.smtp_url.clone()).keeping(warren_mail::Outbox::with_bounds(
        global.data_dir.join("outbox"),
        serve.outbox_keep,
        warren_mail::outbox::MAX_BYTES,
    ))
}

/// The console over `control`, sharing the tenant API's password hasher.
async fn console(
    control: &ControlPlane,
    api: &warren_api::ApiState,
    global: &Global,
    serve: &Serve,
) -> anyhow::Result<warren_console::Console> {
    let config = warren_console::ConsoleConfig {
        signups_per_ip: serve.signup_limit_ip,
        signups_per_email: serve.signup_limit_email,
        mail_from: serve
            .mail_from
            .clone()
            .unwrap_or_else(|| format!("noreply@{}", global.domain)),
        signup_plan: serve.signup_plan.clone(),
        ..Default::default()
    };
    Ok(warren_console::Console::new(control.clone(), api.passwords.clone(), config).await?)
}

async fn account(global: &Global, command: AccountCommand) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    let accounts = warren_control_plane::accounts::Accounts::new(tenants.db().clone());
    let projects = warren_control_plane::projects::Projects::new(tenants.clone());
    match command {
        AccountCommand::List => {
            let mut page = 1;
            loop {
                let (items, total) = accounts.list(page, 500, None).await?;
                for account in &items {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        account.id,
                        account.email,
                        if account.verified {
                            "verified"
                        } else {
                            "unverified"
                        },
                        if account.disabled {
                            "disabled"
                        } else {
                            "enabled"
                        },
                        account.created,
                        account.plan,
                        projects.count(&account.id).await?,
                    );
                }
                if items.is_empty() || u64::from(page) * 500 >= total {
                    break;
                }
                page += 1;
            }
        }
        AccountCommand::Disable { id } => {
            let account = accounts.set_disabled(&id, true).await.map_err(no_account)?;
            println!("Disabled account {} ({}).", account.id, account.email);
        }
        AccountCommand::Enable { id } => {
            let account = accounts
                .set_disabled(&id, false)
                .await
                .map_err(no_account)?;
            println!("Enabled account {} ({}).", account.id, account.email);
        }
        AccountCommand::Verify { account } => {
            let found = accounts.find(&account).await.map_err(|e| match e {
                warren_control_plane::Error::NotFound => {
                    anyhow::anyhow!("there is no account {account:?} (give its email or id; `warren account list` lists them)")
                }
                other => explain(other),
            })?;
            let verified = accounts
                .mark_verified(&found.id)
                .await
                .map_err(no_account)?;
            println!("Account {} ({}) is verified.", verified.id, verified.email);
        }
        AccountCommand::Plan { id, plan } => {
            let account = accounts.set_plan(&id, &plan).await.map_err(no_account)?;
            println!(
                "Account {} ({}) is on plan {}; its {} projects moved onto it.",
                account.id,
                account.email,
                account.plan,
                projects.count(&account.id).await?,
            );
        }
    }
    Ok(())
}

fn no_account(e: warren_control_plane::Error) -> anyhow::Error {
    match e {
        warren_control_plane::Error::NotFound => anyhow::anyhow!("there is no such account"),
        other => explain(other),
    }
}

/// Turns a control-plane error into a message for the terminal.
fn explain(e: warren_control_plane::Error) -> anyhow::Error {
    match e {
        warren_control_plane::Error::Invalid(_, reason) => anyhow::anyhow!(reason),
        warren_control_plane::Error::NotFound => anyhow::anyhow!("there is no such tenant"),
        warren_control_plane::Error::SlugTaken => anyhow::anyhow!("the slug is already taken"),
        other => anyhow::anyhow!(other),
    }
}

async fn usage(
    global: &Global,
    slug: &str,
    from: Option<String>,
    to: Option<String>,
) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    let Some(info) = tenants.find(slug).await? else {
        bail!("there is no tenant {slug:?}")
    };
    let rows = warren_control_plane::metering::usage(tenants.db(), &info.id, from, to)
        .await
        .map_err(explain)?;
    println!(
        "hour\trequests\tbytes_in\tbytes_out\tstorage_bytes\trealtime_seconds\trealtime_peak\trecords_written\thook_cpu_ms"
    );
    let total = warren_control_plane::metering::totals(&rows);
    for u in rows.iter().chain(std::iter::once(&total)) {
        let hour = if u.hour.is_empty() { "total" } else { &u.hour };
        println!(
            "{hour}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            u.requests,
            u.bytes_in,
            u.bytes_out,
            u.storage_bytes,
            u.realtime_seconds,
            u.realtime_peak,
            u.records_written,
            u.hook_cpu_ms
        );
    }
    Ok(())
}

async fn list_plans(global: &Global) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    let plans = warren_control_plane::plans::Plans::new(tenants.db().clone());
    println!(
        "name\trequests_per_second\trequest_burst\tstorage_bytes\tmax_upload_bytes\tmax_realtime_connections\tmax_projects\tmax_backups\tmax_backup_bytes\thook_cpu_ms\thook_memory_bytes\thook_cpu_ms_per_hour\tshipping"
    );
    for plan in plans.list().await? {
        let l = plan.limits;
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            plan.name,
            l.requests_per_second,
            l.request_burst,
            l.storage_bytes,
            l.max_upload_bytes,
            l.max_realtime_connections,
            l.max_projects,
            l.max_backups,
            l.max_backup_bytes,
            l.hook_cpu_ms,
            l.hook_memory_bytes,
            l.hook_cpu_ms_per_hour,
            l.shipping.as_str()
        );
    }
    Ok(())
}

/// The node's backups from the `--backup-*` flags (disabled without `--backup-url`). S3
/// settings not given fall back to the usual AWS environment variables.
fn backups(
    global: &Global,
    flags: &BackupFlags,
    tenants: &Tenants,
    registry: Option<Registry>,
) -> anyhow::Result<warren_control_plane::backups::Backups> {
    use warren_control_plane::backups::Backups;
    let Some(url) = &flags.backup_url else {
        return Ok(Backups::disabled());
    };
    let aws = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default()
    };
    let settings = warren_backup::S3Settings {
        endpoint: flags
            .backup_endpoint
            .clone()
            .unwrap_or_else(|| aws(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
        region: flags
            .backup_region
            .clone()
            .unwrap_or_else(|| aws(&["AWS_REGION", "AWS_DEFAULT_REGION"])),
        access_key: flags
            .backup_access_key
            .clone()
            .unwrap_or_else(|| aws(&["AWS_ACCESS_KEY_ID"])),
        secret: flags
            .backup_secret
            .clone()
            .unwrap_or_else(|| aws(&["AWS_SECRET_ACCESS_KEY"])),
    };
    let target = warren_backup::Target::from_url(url, &settings)?;
    let scratch = global
        .data_dir
        .join(format!(".backup-scratch-{}", std::process::id()));
    Ok(Backups::new(
        target,
        tenants.clone(),
        registry,
        scratch,
        flags.backup_concurrency,
    ))
}

/// `30s`, `15m`, `1h`, `1d` (or plain seconds); `0` or empty is `None`.
fn parse_duration(text: &str) -> anyhow::Result<Option<Duration>> {
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return Ok(None);
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 30m, 1h or 1d"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("{text:?} is not a duration like 30m, 1h or 1d"),
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// Prints progress of a long backup or restore on stderr, at most a few times a second.
fn progress_printer() -> impl Fn(warren_backup::Progress) + Send + Sync {
    let last = std::sync::Mutex::new((String::new(), std::time::Instant::now()));
    move |p: warren_backup::Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let finished = p.total > 0 && p.done >= p.total;
        if last.0 == p.step && last.1.elapsed() < Duration::from_millis(250) && !finished {
            return;
        }
        *last = (p.step.clone(), std::time::Instant::now());
        if p.total > 0 {
            eprintln!(
                "{}: {:.1}/{:.1} MiB ({}%)",
                p.step,
                p.done as f64 / 1048576.0,
                p.total as f64 / 1048576.0,
                p.done * 100 / p.total
            );
        } else {
            eprintln!("{}…", p.step);
        }
    }
}

/// Prints progress of an import on stderr, at most a few times a second per step: bytes for
/// unpacking a zip, files for copying the stored files.
fn transfer_printer() -> impl Fn(warren_tenant::transfer::Progress) + Send + Sync {
    let last = std::sync::Mutex::new(("", std::time::Instant::now()));
    move |p: warren_tenant::transfer::Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let finished = p.done >= p.total;
        if last.0 == p.step && last.1.elapsed() < Duration::from_millis(250) && !finished {
            return;
        }
        *last = (p.step, std::time::Instant::now());
        let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
        match p.step {
            "database" if finished => eprintln!("database: copied and checked"),
            "database" => eprintln!("database: copying…"),
            "files" => eprintln!("files: {}/{} ({percent}%)", p.done, p.total),
            step => eprintln!(
                "{step}: {:.1}/{:.1} MiB ({percent}%)",
                p.done as f64 / 1048576.0,
                p.total as f64 / 1048576.0,
            ),
        }
    }
}

async fn backup(global: &Global, args: BackupArgs) -> anyhow::Result<()> {
    let tenants = tenants(global).await?;
    // An in-place restore swaps the tenant's directory itself only while no server serves
    // the data directory, and keeps one from starting until it is done.
    let mut _exclusive = None;
    let backups = match &args.command {
        BackupCommand::Restore {
            slug,
            in_place: true,
            ..
        } => match crate::datalock::try_take(&global.data_dir, "in-place restore")? {
            crate::datalock::Holder::Free(lock) => {
                _exclusive = Some(lock);
                backups(global, &args.flags, &tenants, None)?
                    .with_file_bucket(default_bucket(&args.files))
                    .exclusive()
            }
            crate::datalock::Holder::Held(by) if !by.starts_with("served by") => bail!(
                "{} is busy ({by}): another in-place restore is running; try again when it is done",
                global.data_dir.display()
            ),
            crate::datalock::Holder::Held(by) => bail!(
                "a server is serving {} ({by}); replace a served tenant through its operator API, which drains it first: \
                     curl -X POST -H \"Authorization: Bearer $WARREN_OPERATOR_TOKEN\" -H 'Content-Type: application/json' \
                     -d '{{\"inPlace\":true}}' <platform URL>/v1/tenants/{slug}/backups/restore \
                     (or stop the server and run this again)",
                global.data_dir.display()
            ),
        },
        _ => backups(global, &args.flags, &tenants, None)?
            .with_file_bucket(default_bucket(&args.files)),
    };
    if !backups.enabled() {
        bail!(
            "no backup target: pass --backup-url s3://bucket/prefix or file:///dir (or set WARREN_BACKUP_URL)"
        );
    }
    let show =
        !args.quiet && (args.progress || std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let printer = progress_printer();
    let progress = move |p: warren_backup::Progress| {
        if show {
            printer(p)
        }
    };
    match args.command {
        BackupCommand::Create { slug } => {
            let _hold = match tenants.find(&slug).await? {
                Some(info) => hold(global, &info.id, &slug).await?,
                None => None,
            };
            let manifest = backups.create(&slug, &progress).await.map_err(explain)?;
            println!(
                "Backed up {slug} as {} ({} bytes) to {}",
                manifest.id,
                manifest.size(),
                backups.describe()
            );
        }
        BackupCommand::List { slug } => {
            for manifest in backups.list(&slug).await.map_err(explain)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    manifest.id,
                    manifest.created,
                    manifest.size(),
                    manifest.counts.values().sum::<i64>()
                );
            }
        }
        BackupCommand::Restore {
            slug,
            to,
            backup,
            at,
            in_place,
        } => {
            let request = warren_control_plane::backups::RestoreRequest {
                backup,
                at,
                to,
                in_place,
            };
            let done = Lifecycle::offline(tenants.clone())
                .restore(&backups, &slug, &request, &progress)
                .await
                .map_err(explain)?;
            let what = match done.restored {
                Restored::Latest => format!(
                    "the latest shipped state, through {} (backup {} and {} transactions shipped after it)",
                    done.through, done.backup, done.transactions
                ),
                Restored::Moment => format!(
                    "the state as of {} (backup {} and {} transactions after it)",
                    done.through, done.backup, done.transactions
                ),
                Restored::Snapshot => {
                    format!("snapshot {} alone, as of {}", done.backup, done.through)
                }
            };
            println!(
                "Restored {slug} into {}: {what}",
                urls(global)?.tenant_url(&done.tenant.slug)
            );
        }
        BackupCommand::Verify { slug, backup } => {
            let drill = backups
                .verify(&slug, backup.as_deref(), &progress)
                .await
                .map_err(explain)?;
            if !drill.mismatches.is_empty() {
                bail!(
                    "backup {} restored, but record counts differ: {:?}",
                    drill.manifest.id,
                    drill.mismatches
                );
            }
            println!(
                "Backup {} of {slug} is sound: integrity ok, {} records in {} collections",
                drill.manifest.id,
                drill.manifest.counts.values().sum::<i64>(),
                drill.manifest.counts.len()
            );
        }
    }
    Ok(())
}
