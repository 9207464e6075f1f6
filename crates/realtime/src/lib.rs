//! Realtime for one tenant: a [`Broker`] of connected clients and their subscriptions, which
//! fans committed record changes out to the subscribers whose API rules admit them.
//!
//! Transport-agnostic: the HTTP crate turns a [`Subscriber`] into an SSE stream or a
//! WebSocket. It depends on the record engine for rules and rendering, never on HTTP.

mod broker;
pub mod delivery;
pub mod topic;

#[cfg(test)]
mod tests;

pub use broker::{
    Broker, CLIENT_BUFFER, Error, MAX_CLIENT_ID_LEN, MAX_PENDING_CHANGES, MAX_SUBSCRIPTION_LEN,
    MAX_SUBSCRIPTIONS, Message, Project, Subscriber,
};
pub use topic::{Target, Topic};
