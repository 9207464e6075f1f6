//! End-to-end tests: the real `warren` binary on a random loopback port with a temporary data
//! directory, driven over HTTP and through its CLI.

mod acme;
mod admin_api;
mod auth;
mod backup;
mod backup_s3;
mod backup_surfaces;
mod code;
mod collections;
mod console;
mod crons;
mod dashboard_link;
mod events;
mod files;
mod files_s3;
mod foundation;
mod handoff;
mod holds;
mod hook_limits;
mod hooks;
mod indexes;
mod logs;
mod metering;
mod migrations;
mod outbound;
mod outbox;
mod parity;
mod pb_backups;
mod realtime;
mod records;
mod settings;
mod support;
mod tls;
mod transfer;
mod uploads;
mod urls;
