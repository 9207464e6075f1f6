//! The edge: listeners and hostname classification. It decides which side of Warren a request
//! is for (the platform, a tenant, or nobody) and serves connections with graceful shutdown.
//!
//! It never imports records, auth or tenant internals; the binary wires its decisions to them.

pub mod host;
mod server;

pub use host::{Destination, classify};
pub use server::serve;
