//! The command line. Command and flag names are part of the product: scripts and docs use them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Warren: many PocketBase-compatible backends from one binary.
#[derive(Debug, Parser)]
#[command(name = "warren", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Where Warren keeps its data: the control database and one directory per tenant.
    #[arg(
        long,
        global = true,
        env = "WARREN_DATA_DIR",
        default_value = "./warren_data"
    )]
    pub data_dir: PathBuf,
    /// The platform domain: `<slug>.<domain>` reaches a tenant, `<domain>` the platform.
    #[arg(
        long,
        global = true,
        env = "WARREN_DOMAIN",
        default_value = "localhost"
    )]
    pub domain: String,
    /// Address of the plain HTTP listener. CLI commands print tenant URLs with the running
    /// server's port (and scheme); with no server running, with this one.
    #[arg(
        long,
        global = true,
        env = "WARREN_HTTP",
        default_value = "127.0.0.1:8090"
    )]
    pub http: SocketAddr,
    /// How users reach the platform when a proxy stands in front of it, e.g.
    /// `https://example.com`: tenant URLs take its scheme and port (its host is `--domain`).
    #[arg(long, global = true, env = "WARREN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// DNS resolver (`IP:PORT`) for custom-domain TXT verification; the system's by default.
    #[arg(long, global = true, env = "WARREN_DNS_RESOLVER")]
    pub dns_resolver: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform: the edge, the control plane and every tenant.
    Serve(Serve),
    /// Create, list and delete tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's superusers.
    #[command(subcommand)]
    Superuser(SuperuserCommand),
    /// Add, list, check and remove a tenant's custom domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// List, disable and enable console accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Take, list, restore and check backups of tenants.
    Backup(BackupArgs),
    /// Show a tenant's metered usage per hour.
    Usage {
        /// The tenant's slug.
        slug: String,
        /// First hour (a date or date-time, UTC); default 31 days ago.
        #[arg(long)]
        from: Option<String>,
        /// Last hour (a date or date-time, UTC); default now.
        #[arg(long)]
        to: Option<String>,
    },
    /// List plans and their quotas.
    #[command(subcommand)]
    Plan(PlanCommand),
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// List plans and their quotas (0 = no limit).
    List,
}

/// `warren serve`
#[derive(Debug, Args)]
pub struct Serve {
    /// Most tenants kept open at once; the least recently used closes first.
    #[arg(long, env = "WARREN_MAX_OPEN_TENANTS", default_value_t = 512)]
    pub max_open_tenants: usize,
    /// Seconds a tenant may stay unused before it is closed.
    #[arg(long, env = "WARREN_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout: u64,
    /// How often tenants' usage counters are written to the control database (`10s`,
    /// `500ms`, `1m`). A crash loses at most this much usage.
    #[arg(long, env = "WARREN_METERING_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub metering_interval: std::time::Duration,
    /// Most tenant cron jobs running at once on this node (each tenant runs one at a time).
    #[arg(long, env = "WARREN_CRON_WORKERS", default_value_t = 4)]
    pub cron_workers: usize,
    /// How long a cron minute lasts. At `60s` jobs run at each minute boundary of the clock;
    /// shorter, every interval counts as the next minute (for tests of scheduled jobs).
    #[arg(long, env = "WARREN_CRON_MINUTE", default_value = "60s", value_parser = parse_interval, hide = true)]
    pub cron_minute: std::time::Duration,
    /// Turn off metering and quotas on the request path (benchmarks, private installations).
    #[arg(long, env = "WARREN_NO_METERING")]
    pub no_metering: bool,
    /// SMTP relay for the console and tenants without their own (`smtp://user:pass@host:port`,
    /// `smtps://…`). Without one, mail is kept in `<data-dir>/outbox` and shown at `/outbox`.
    #[arg(long, env = "WARREN_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Let tenants' `$http.send` reach loopback, private, link-local and other non-public
    /// addresses (off: only public addresses are reachable). For private installations and tests.
    #[arg(long, env = "WARREN_HOOKS_ALLOW_PRIVATE_NETWORK")]
    pub hooks_allow_private_network: bool,
    /// Messages the outbox keeps without a relay (the oldest go first; 64 MiB at most).
    #[arg(long, env = "WARREN_OUTBOX_KEEP", default_value_t = warren_mail::outbox::MAX_MESSAGES)]
    pub outbox_keep: usize,
    /// Accept plain `http://127.0.0.1` OAuth2 provider endpoints. For local test providers only.
    #[arg(long, env = "WARREN_OAUTH_INSECURE_LOOPBACK")]
    pub oauth_insecure_loopback: bool,
    /// Create the index the index advisor proposes once a tenant's list without one was slow
    /// three times (through the collection's `indexes`, logged in the tenant's logs). Off by
    /// default: the proposals are then only logged and listed for the tenant's superusers.
    #[arg(long, env = "WARREN_AUTO_INDEX")]
    pub auto_index: bool,
    /// The platform's default S3-compatible bucket for tenants' files (tenants without their
    /// own S3 settings keep files there under their id). Without it files stay on local disk.
    #[command(flatten)]
    pub s3: S3Flags,
    /// HTTPS with certificates by SNI (ACME or the operator's own).
    #[command(flatten)]
    pub tls: Box<TlsFlags>,
    /// Peers (addresses or CIDR subnets, comma-separated) whose requests may name the client
    /// in a tenant's `trustedProxy` headers. Unset: any peer may, as in PocketBase, where a
    /// tenant configuring the headers is its own statement of trust.
    #[arg(long, env = "WARREN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Auth attempts (sign-ins, OTP, verification and reset requests) one client IP may make
    /// against one tenant per 10 seconds, before 429 (at least 1).
    #[arg(
        long,
        env = "WARREN_AUTH_LIMIT_IP",
        default_value_t = warren_api::AUTH_LIMIT_IP,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub auth_limit_ip: u32,
    /// Console signups allowed per client IP per hour.
    #[arg(long, env = "WARREN_SIGNUP_LIMIT_IP", default_value_t = 10)]
    pub signup_limit_ip: u32,
    /// Console signups (and password-reset mails) allowed per email address per hour.
    #[arg(long, env = "WARREN_SIGNUP_LIMIT_EMAIL", default_value_t = 3)]
    pub signup_limit_email: u32,
    /// Sender address of the console's mail (default `noreply@<domain>`).
    #[arg(long, env = "WARREN_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Backups: target, schedule and retention.
    #[command(flatten)]
    pub backup: BackupFlags,
    /// Scheduled restore drills.
    #[command(flatten)]
    pub drills: DrillFlags,
    /// The plan new console accounts start on: its maxProjects caps their projects, and their
    /// projects start on it (the `default` plan when no plan has this name).
    #[arg(long, env = "WARREN_SIGNUP_PLAN", default_value = "default")]
    pub signup_plan: String,
    /// How many nice levels realtime delivery (event fan-out and open streams) runs below
    /// request handling: 0 gives them equal footing; the default lets requests go first.
    #[arg(long, env = "WARREN_DELIVERY_NICENESS", default_value_t = warren_realtime::delivery::NICENESS,
        value_parser = clap::value_parser!(i32).range(0..=19))]
    pub delivery_niceness: i32,
    /// How long a one-time link from the console's "Open dashboard" button may be used.
    #[arg(long, env = "WARREN_DASHBOARD_LINK_TTL", default_value = "60s", value_parser = parse_interval)]
    pub dashboard_link_ttl: std::time::Duration,
    /// Cluster mode (all of `--cluster-etcd`, `--node-id` and `--advertise`, or none).
    #[command(flatten)]
    pub cluster: Box<ClusterFlags>,
}

/// Cluster mode: this node joins the cluster coordinated by an etcd cluster.
#[derive(Debug, Args)]
pub struct ClusterFlags {
    /// The etcd members' client URLs (`http://host:2379`, comma-separated). With it (and
    /// `--node-id` and `--advertise`) this node joins a Warren cluster.
    #[arg(long, env = "WARREN_CLUSTER_ETCD", value_delimiter = ',')]
    pub cluster_etcd: Vec<String>,
    /// This node's id, unique in the cluster (letters, digits, `-`, `_`, `.`).
    #[arg(long, env = "WARREN_NODE_ID")]
    pub node_id: Option<String>,
    /// Where the other nodes reach this node's plain HTTP listener (`HOST:PORT`).
    #[arg(long, env = "WARREN_ADVERTISE")]
    pub advertise: Option<String>,
    /// The cluster's name: its keys in etcd live under `/warren/<name>/`.
    #[arg(long, env = "WARREN_CLUSTER_NAME", default_value = "warren")]
    pub cluster_name: String,
    /// Seconds this node's etcd lease lives without renewal: a dead node's tenants are free
    /// again this long after it died; a node cut off from etcd stops serving after half of it.
    #[arg(long, env = "WARREN_CLUSTER_LEASE_TTL", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(2..=300))]
    pub cluster_lease_ttl: u64,
    /// The secret nodes show each other on forwarded requests (at least 16 characters; the
    /// same on every node). Unset: the first node makes one and keeps it in etcd.
    #[arg(long, env = "WARREN_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Whether the leader moves a share of the tenants to a node that joins (once it has been
    /// live for a lease TTL, at least 3 s). `false`: tenants move only when an operator moves
    /// them or their node dies.
    #[arg(long, env = "WARREN_CLUSTER_REBALANCE", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cluster_rebalance: bool,
    /// Whether the leader has each new tenant provisioned on the node placement gives it (with
    /// a backup target). `false`: new tenants are provisioned on the leader and stay there.
    #[arg(long, env = "WARREN_CLUSTER_PLACE_NEW", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cluster_place_new: bool,
}

/// The cluster flags once checked.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub etcd: Vec<String>,
    pub node: String,
    pub advertise: String,
    pub name: String,
    pub ttl: std::time::Duration,
    pub secret: Option<String>,
    /// Whether this node, when it leads, rebalances onto joining nodes.
    pub rebalance: bool,
    /// Whether this node, when it leads, hands new tenants to their placed node.
    pub place_new: bool,
}

impl ClusterFlags {
    /// The cluster settings, `None` without cluster flags; an error naming what is missing
    /// when only some are given.
    pub fn settings(&self) -> Result<Option<ClusterSettings>, String> {
        let given = [
            !self.cluster_etcd.is_empty(),
            self.node_id.is_some(),
            self.advertise.is_some(),
        ];
        if given.iter().all(|g| !g) {
            return Ok(None);
        }
        if !given.iter().all(|g| *g) {
            return Err(
                "cluster mode needs all of --cluster-etcd, --node-id and --advertise (or none of them)"
                    .into(),
            );
        }
        let advertise = self.advertise.clone().unwrap_or_default();
        let port_ok = advertise
            .rsplit_once(':')
            .and_then(|(host, port)| (!host.is_empty()).then_some(port))
            .and_then(|port| port.parse::<u16>().ok())
            .is_some_and(|port| port != 0);
        if !port_ok {
            return Err(format!("--advertise {advertise:?}: give HOST:PORT"));
        }
        for url in &self.cluster_etcd {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--cluster-etcd {url:?}: give etcd client URLs (http://host:port)"
                ));
            }
        }
        Ok(Some(ClusterSettings {
            etcd: self.cluster_etcd.clone(),
            node: self.node_id.clone().unwrap_or_default(),
            advertise,
            name: self.cluster_name.clone(),
            ttl: std::time::Duration::from_secs(self.cluster_lease_ttl),
            secret: self.cluster_secret.clone(),
            rebalance: self.cluster_rebalance,
            place_new: self.cluster_place_new,
        }))
    }
}

/// The HTTPS listener and its certificates.
#[derive(Debug, Args)]
pub struct TlsFlags {
    /// Address of the HTTPS listener. With it, the plain listener only answers ACME HTTP-01
    /// challenges and redirects everything else to HTTPS.
    #[arg(long, env = "WARREN_HTTPS")]
    pub https: Option<SocketAddr>,
    /// The operator's certificate chain (PEM) for `*.<domain>`; reloaded when it changes.
    #[arg(long, env = "WARREN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "WARREN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Never ask an ACME CA for certificates (serve the operator's certificate only).
    #[arg(long, env = "WARREN_NO_ACME")]
    pub no_acme: bool,
    /// ACME directory URL.
    #[arg(
        long,
        env = "WARREN_ACME_DIRECTORY",
        default_value = "https://acme-v02.api.letsencrypt.org/directory"
    )]
    pub acme_directory: String,
    /// Contact email of the ACME account.
    #[arg(long, env = "WARREN_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM root certificate to trust for the CA's own HTTPS (test CAs such as Pebble).
    #[arg(long, env = "WARREN_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,
    /// Challenge types to try, in order (`http-01`, `tls-alpn-01`).
    #[arg(
        long,
        env = "WARREN_ACME_CHALLENGES",
        value_delimiter = ',',
        default_value = "http-01,tls-alpn-01"
    )]
    pub acme_challenges: Vec<String>,
    /// Seconds to wait after a host's first failed order; doubled after each further failure.
    #[arg(long, env = "WARREN_ACME_RETRY_BASE", default_value_t = 60)]
    pub acme_retry_base: u64,
    /// Seconds between checks for certificates due for renewal.
    #[arg(long, env = "WARREN_ACME_RENEW_CHECK", default_value_t = 60)]
    pub acme_renew_check: u64,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Claim a custom domain for a tenant; prints the TXT record that proves it.
    Add {
        /// The tenant's slug.
        slug: String,
        /// The domain, e.g. app.example.com.
        domain: String,
    },
    /// List a tenant's custom domains with their status.
    List {
        /// The tenant's slug.
        slug: String,
    },
    /// Look the TXT record up now and mark the domain verified when it holds the token.
    Check {
        /// The tenant's slug.
        slug: String,
        /// The domain.
        domain: String,
    },
    /// Remove a custom domain (it stops routing at once).
    Remove {
        /// The tenant's slug.
        slug: String,
        /// The domain.
        domain: String,
    },
}

/// The platform-wide file storage bucket.
#[derive(Debug, Args)]
pub struct S3Flags {
    /// S3 endpoint URL, e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:8333`.
    #[arg(long = "s3-endpoint", env = "WARREN_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Bucket name.
    #[arg(long = "s3-bucket", env = "WARREN_S3_BUCKET")]
    pub bucket: Option<String>,
    /// Region.
    #[arg(
        long = "s3-region",
        env = "WARREN_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    /// Access key id.
    #[arg(
        long = "s3-access-key",
        env = "WARREN_S3_ACCESS_KEY",
        default_value = ""
    )]
    pub access_key: String,
    /// Secret access key (prefer the environment variable to the flag).
    #[arg(
        long = "s3-secret",
        env = "WARREN_S3_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub secret: String,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its URL.
    Create {
        /// Lowercase letters, digits and hyphens, 3–63 characters.
        slug: String,
    },
    /// List tenants.
    List,
    /// Delete a tenant and all its data.
    Delete {
        /// The tenant's slug.
        slug: String,
    },
    /// Create a tenant from a PocketBase data directory (`pb_data`), keeping its collections,
    /// records, users, settings, logs and files.
    Import {
        /// Slug of the new tenant.
        slug: String,
        /// The PocketBase data directory (the one holding `data.db`; it may be in use), or a
        /// zip of one (a zipped `pb_data`, or a backup PocketBase made).
        #[arg(long)]
        from: PathBuf,
        /// Progress on stderr even when it is not a terminal (it always is shown on one).
        #[arg(long)]
        progress: bool,
        /// No progress output, not even on a terminal.
        #[arg(long, conflicts_with = "progress")]
        quiet: bool,
    },
    /// Suspend a tenant: every request gets 503 until it is resumed.
    Suspend {
        /// The tenant's slug.
        slug: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// The tenant's slug.
        slug: String,
    },
    /// Move a tenant to another plan (applies at its next request).
    Plan {
        /// The tenant's slug.
        slug: String,
        /// The plan's name.
        plan: String,
    },
    /// Replace a tenant's code from directories: each folder given replaces the tenant's whole
    /// (checked, then swapped in at once; a running server serves the new files at once), the
    /// others stay.
    Deploy {
        /// The tenant's slug.
        slug: String,
        /// The new `pb_hooks` (JavaScript hooks).
        #[arg(long)]
        hooks: Option<PathBuf>,
        /// The new `pb_migrations` (JavaScript migrations).
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// The new `pb_public` (the static site served at the tenant's `/`).
        #[arg(long)]
        public: Option<PathBuf>,
    },
    /// Manage a tenant's secrets, which its code reads with `$os.getenv(NAME)` (values are
    /// never shown; a running server's code sees a change at once).
    Secret {
        /// The tenant's slug.
        slug: String,
        #[command(subcommand)]
        action: SecretCommand,
    },
    /// Run a tenant's `pb_migrations` as PocketBase's `migrate` command does: `up` applies
    /// the files not applied yet, `down [N]` reverts the last N applied (1 by default), all
    /// in one transaction.
    Migrate {
        /// The tenant's slug.
        slug: String,
        /// `up` or `down`.
        #[arg(default_value = "up")]
        direction: String,
        /// How many to revert with `down`.
        count: Option<usize>,
    },
    /// Hold a tenant closed on the running server so that other programs can open its files.
    ///
    /// The server keeps a served tenant's `data.db` to itself; while it holds the tenant
    /// closed, the tenant's requests get 503. Runs COMMAND in the tenant's directory and
    /// releases the tenant when it exits, or without one waits for Enter or Ctrl-C:
    /// `warren tenant hold shop -- sqlite3 data.db`.
    Hold {
        /// The tenant's slug.
        slug: String,
        /// The program to run, and its arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Write a tenant as a PocketBase data directory that stock PocketBase can serve, with its
    /// `pb_hooks`, `pb_migrations` and `pb_public` beside it.
    Export {
        /// The tenant's slug.
        slug: String,
        /// Destination directory; created if missing, must be empty otherwise.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set secret NAME to VALUE.
    Set {
        /// Letters, digits and _, not starting with a digit, at most 64.
        name: String,
        /// At most 8 KiB.
        value: String,
    },
    /// Remove secret NAME.
    Unset {
        /// The secret's name.
        name: String,
    },
    /// List the names of the tenant's secrets.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SuperuserCommand {
    /// Create a superuser of a tenant, or set the password of an existing one.
    Upsert {
        /// The tenant's slug.
        slug: String,
        /// The superuser's email.
        email: String,
        /// The superuser's password (8–71 characters).
        password: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List console accounts: id, email, verified, disabled, created, plan, projects.
    List,
    /// Disable an account: it can no longer sign in and its sessions end.
    Disable {
        /// The account's id.
        id: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The account's id.
        id: String,
    },
    /// Mark an account's email verified (works while the server runs).
    Verify {
        /// The account's email or id.
        account: String,
    },
    /// Put an account on a plan: its maxProjects caps the account's projects, and the
    /// account's projects move onto it (a running server applies it within seconds).
    Plan {
        /// The account's id.
        id: String,
        /// An existing plan's name (see `warren plan list`).
        plan: String,
    },
}

/// A duration such as `10s`, `500ms`, `2m` or a bare number of seconds; at least 10 ms.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let millis = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        _ => return Err(format!("{text:?}: use ms, s or m")),
    };
    if millis < 10 {
        return Err("the interval must be at least 10ms".into());
    }
    Ok(std::time::Duration::from_millis(millis))
}

/// Where backups go and how often they are taken.
#[derive(Debug, Args)]
pub struct BackupFlags {
    /// Backup target: `s3://bucket/prefix` or `file:///absolute/dir`. Without it, backups are off.
    #[arg(long = "backup-url", env = "WARREN_BACKUP_URL", global = true)]
    pub backup_url: Option<String>,
    /// S3 endpoint of the backup bucket (default: AWS_ENDPOINT_URL, else AWS itself).
    #[arg(
        long = "backup-s3-endpoint",
        env = "WARREN_BACKUP_S3_ENDPOINT",
        global = true
    )]
    pub backup_endpoint: Option<String>,
    /// Region of the backup bucket (default: AWS_REGION, else us-east-1).
    #[arg(
        long = "backup-s3-region",
        env = "WARREN_BACKUP_S3_REGION",
        global = true
    )]
    pub backup_region: Option<String>,
    /// Access key id for the backup bucket (default: AWS_ACCESS_KEY_ID).
    #[arg(
        long = "backup-s3-access-key",
        env = "WARREN_BACKUP_S3_ACCESS_KEY",
        global = true
    )]
    pub backup_access_key: Option<String>,
    /// Secret key for the backup bucket (default: AWS_SECRET_ACCESS_KEY; prefer the environment).
    #[arg(
        long = "backup-s3-secret",
        env = "WARREN_BACKUP_S3_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub backup_secret: Option<String>,
    /// `serve`: back up every tenant this often when it changed (`30m`, `1h`, `1d`; `0` = off).
    #[arg(
        long = "backup-every",
        env = "WARREN_BACKUP_EVERY",
        default_value = "1d",
        global = true
    )]
    pub backup_every: String,
    /// `serve`: backups kept per tenant (0 = no limit; the newest is always kept).
    #[arg(
        long = "backup-keep",
        env = "WARREN_BACKUP_KEEP",
        default_value_t = 7,
        global = true
    )]
    pub backup_keep: usize,
    /// `serve`: delete backups older than this (`30d`; empty = no age limit).
    #[arg(
        long = "backup-max-age",
        env = "WARREN_BACKUP_MAX_AGE",
        default_value = "",
        global = true
    )]
    pub backup_max_age: String,
    /// Most backups and restores running at once on this node.
    #[arg(
        long = "backup-concurrency",
        env = "WARREN_BACKUP_CONCURRENCY",
        default_value_t = 2,
        global = true
    )]
    pub backup_concurrency: usize,
    /// `serve`: ship the WAL of each tenant that commits to the backup target at most this
    /// often, for point-in-time restores (`1s`, `5s`; `0` = off).
    #[arg(
        long = "backup-wal-every",
        env = "WARREN_BACKUP_WAL_EVERY",
        default_value = "1s",
        global = true
    )]
    pub backup_wal_every: String,
}

/// `warren backup …`
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub flags: BackupFlags,
    /// Progress on stderr even when it is not a terminal (it always is shown on one).
    #[arg(long)]
    pub progress: bool,
    /// No progress output, not even on a terminal.
    #[arg(long, conflicts_with = "progress")]
    pub quiet: bool,
    /// The platform's default file bucket, as given to `serve` (`--s3-*`), so files tenants
    /// keep there are backed up and restored.
    #[command(flatten)]
    pub files: S3Flags,
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup of a tenant now.
    Create {
        /// The tenant's slug.
        slug: String,
    },
    /// List a tenant's complete backups, oldest first.
    List {
        /// The tenant's slug.
        slug: String,
    },
    /// Restore a backup into a new tenant (default `<slug>-restored`).
    Restore {
        /// The tenant whose backup is restored.
        slug: String,
        /// Slug of the new tenant.
        #[arg(long)]
        to: Option<String>,
        /// Backup id (default: the latest).
        #[arg(long)]
        backup: Option<String>,
        /// Restore the state as of this moment (RFC 3339).
        #[arg(long)]
        at: Option<String>,
        /// Replace the tenant itself. Only while no server serves the data directory (the CLI
        /// then holds its lock for the swap); a served tenant is replaced through the running
        /// server's operator API (`POST /v1/tenants/{slug}/backups/restore` with `inPlace`).
        #[arg(long)]
        in_place: bool,
    },
    /// Restore a backup into scratch space and check its integrity and record counts.
    Verify {
        /// The tenant's slug.
        slug: String,
        /// Backup id (default: the latest).
        #[arg(long)]
        backup: Option<String>,
    },
}

/// Scheduled restore drills of `serve` (only with a backup target).
#[derive(Debug, Args)]
pub struct DrillFlags {
    /// How often a restore drill samples tenants (`30m`, `6h`, `1d`; `0` = off). The first
    /// drill runs one interval after the start.
    #[arg(
        long = "backup-drill-every",
        env = "WARREN_BACKUP_DRILL_EVERY",
        default_value = "6h"
    )]
    pub every: String,
    /// Tenants drilled per interval, one after another.
    #[arg(
        long = "backup-drill-sample",
        env = "WARREN_BACKUP_DRILL_SAMPLE",
        default_value_t = 2
    )]
    pub sample: usize,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, ClusterSettings, Command};

    #[test]
    fn the_auth_budget_defaults_to_120_and_refuses_zero() {
        let cli = Cli::try_parse_from(["warren", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(serve.auth_limit_ip, 120);
        let cli = Cli::try_parse_from(["warren", "serve", "--auth-limit-ip", "5000"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(serve.auth_limit_ip, 5000);
        let refused = Cli::try_parse_from(["warren", "serve", "--auth-limit-ip", "0"]);
        assert!(refused.is_err());
    }

    #[test]
    fn dashboard_links_live_a_minute_unless_told_otherwise() {
        let ttl = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Serve(serve) = cli.command else {
                panic!("not serve");
            };
            serve.dashboard_link_ttl
        };
        assert_eq!(ttl(&["warren", "serve"]).as_secs(), 60);
        let short = ttl(&["warren", "serve", "--dashboard-link-ttl", "250ms"]);
        assert_eq!(short.as_millis(), 250);
        let bad = Cli::try_parse_from(["warren", "serve", "--dashboard-link-ttl", "soon"]);
        assert!(bad.is_err());
    }

    fn cluster(args: &[&str]) -> Result<Option<ClusterSettings>, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        serve.cluster.settings()
    }

    #[test]
    fn cluster_flags_come_all_together_or_not_at_all() {
        assert!(cluster(&["warren", "serve"]).unwrap().is_none());
        let full = [
            "warren",
            "serve",
            "--cluster-etcd",
            "http://127.0.0.1:2379,http://127.0.0.1:2381",
            "--node-id",
            "n1",
            "--advertise",
            "10.0.0.1:8090",
        ];
        let settings = cluster(&full).unwrap().unwrap();
        assert_eq!(settings.etcd.len(), 2);
        assert_eq!(settings.name, "warren");
        assert_eq!(settings.ttl.as_secs(), 10);
        assert!(settings.rebalance, "rebalancing is on by default");
        let mut off = full.to_vec();
        off.push("--cluster-rebalance=false");
        assert!(!cluster(&off).unwrap().unwrap().rebalance);
        assert!(
            settings.place_new,
            "new tenants go to their placed node by default"
        );
        let mut place = full.to_vec();
        place.push("--cluster-place-new=false");
        assert!(!cluster(&place).unwrap().unwrap().place_new);
        let partial = cluster(&full[..6]).unwrap_err();
        assert!(partial.contains("--advertise"), "{partial}");
        let mut bad_port = full;
        bad_port[7] = "10.0.0.1";
        assert!(cluster(&bad_port).is_err());
        let mut bad_url = full;
        bad_url[3] = "127.0.0.1:2379";
        assert!(cluster(&bad_url).is_err());
        let mut ttl = full.to_vec();
        ttl.extend(["--cluster-lease-ttl", "1"]);
        assert!(cluster(&ttl).is_err());
    }
}
