//! Handlers of the tenant API, one module per resource.

pub mod auth;
pub mod batch;
pub mod collections;
pub mod health;
pub mod records;
pub mod settings;
