//! Integration tests for warren-filter: differential against PocketBase,
//! SQL snapshots, constructs, and property tests.

#[allow(dead_code)]
mod common;
mod constructs;
mod differential;
mod properties;
mod snapshots;
