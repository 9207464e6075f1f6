//! The outbox as the operator reads it: mail kept locally when the platform has no SMTP relay,
//! each message labelled with the tenant it was sent for (by slug) or as the console's.

use warren_mail::Kept;

use crate::{ControlPlane, Error, Result};

/// Largest page of messages.
pub const MAX_PER_PAGE: usize = 200;

/// A kept message and who it was sent for.
#[derive(Debug, Clone)]
pub struct Message {
    /// The message as kept.
    pub kept: Kept,
    /// The tenant's slug; `None` for console mail or a tenant deleted since.
    pub slug: Option<String>,
}

impl Message {
    /// `console`, the tenant's slug, or `deleted tenant <id>`.
    pub fn label(&self) -> String {
        match (&self.kept.tenant, &self.slug) {
            (None, _) => "console".into(),
            (Some(_), Some(slug)) => slug.clone(),
            (Some(id), None) => format!("deleted tenant {id}"),
        }
    }
}

/// Whether this platform keeps mail locally (it has no SMTP relay).
pub fn enabled(state: &ControlPlane) -> bool {
    state.console.outbox().is_some()
}

/// A page of kept messages, newest first, and how many are kept. `NotFound` when mail goes to
/// a relay.
pub async fn page(
    state: &ControlPlane,
    page: usize,
    per_page: usize,
) -> Result<(Vec<Message>, usize)> {
    let outbox = state.console.outbox().cloned().ok_or(Error::NotFound)?;
    let per_page = per_page.clamp(1, MAX_PER_PAGE);
    let (items, total) = tokio::task::spawn_blocking(move || outbox.list(page.max(1), per_page))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
        .map_err(Error::Io)?;
    let mut messages = Vec::with_capacity(items.len());
    for kept in items {
        messages.push(label(state, kept).await?);
    }
    Ok((messages, total))
}

/// Kept message `id`. `NotFound` when there is none, or when mail goes to a relay.
pub async fn one(state: &ControlPlane, id: &str) -> Result<Message> {
    let outbox = state.console.outbox().cloned().ok_or(Error::NotFound)?;
    let id = id.to_string();
    let kept = tokio::task::spawn_blocking(move || outbox.get(&id))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
        .map_err(Error::Io)?
        .ok_or(Error::NotFound)?;
    label(state, kept).await
}

async fn label(state: &ControlPlane, kept: Kept) -> Result<Message> {
    let slug = match &kept.tenant {
        Some(id) => state.tenants.find_id(id).await?.map(|t| t.slug),
        None => None,
    };
    Ok(Message { kept, slug })
}
