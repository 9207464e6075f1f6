//! End-to-end tests: the real `warren` binary on a random loopback port with a temporary data
//! directory, driven over HTTP and through its CLI.

mod collections;
mod foundation;
mod records;
mod support;
