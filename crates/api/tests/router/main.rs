//! Router tests: the tenant API router driven in-process with `oneshot`, one fresh tenant per
//! test in a temporary directory, no sockets and no server process.

mod auth;
mod batch;
mod collections;
mod errors;
mod records;
mod support;
