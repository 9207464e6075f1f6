//! The project page's "Open dashboard" button: a one-time code for the signed-in owner and the
//! project, and a redirect to the project's dashboard, which trades the code for a session.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::Console;
use crate::auth::{FormBody, failure, forbidden};
use crate::html::redirect;
use crate::projects::owned;
use crate::visitor::Visitor;

/// Fields of the button's form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OpenDashboard {
    csrf: String,
}

/// `POST /projects/{id}/dashboard`: redirects to `<project URL>/_/#/link/<code>`. The code is
/// in the fragment, which browsers never send to a server or in a `Referer`.
pub async fn open_dashboard(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<OpenDashboard>,
) -> Response {
    let (account, project, _, _) = match owned(&state, &visitor, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(&visitor);
    }
    let code = match state
        .console
        .dashboard_links()
        .mint(&project.id, &account.email)
    {
        Ok(code) => code,
        Err(e) => return failure(&visitor, e),
    };
    tracing::info!(account = %account.id, slug = %project.slug, "dashboard link made");
    let url = format!("{}/_/#/link/{code}", state.urls.tenant_url(&project.slug));
    redirect(&visitor, &url, &[])
}
