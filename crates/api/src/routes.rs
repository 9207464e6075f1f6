//! Handlers of the tenant API, one module per resource.

pub mod auth;
pub mod backups;
pub mod batch;
pub mod collections;
pub mod crons;
pub mod custom;
pub mod files;
pub mod health;
pub mod logs;
pub mod oauth2;
pub mod probes;
pub mod public;
pub mod realtime;
pub mod records;
pub mod settings;
pub mod sql;
pub mod warren;
