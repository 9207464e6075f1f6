//! The project page's "Secrets" section: set a secret for the project's code to read with
//! `$os.getenv`, see the names that are set, remove one. Values are written, never shown. In a
//! cluster the node serving the project makes the change (see `elsewhere`).
//! Projects are looked up within the signed-in account only.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use warren_control_plane::{Error, secrets};

use crate::Console;
use crate::auth::{FormBody, failure, forbidden};
use crate::html::Notice;
use crate::projects::{owned, project_page};
use crate::visitor::Visitor;

/// Fields of the secret forms.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SecretForm {
    csrf: String,
    name: String,
    value: String,
}

/// `POST /projects/{id}/secrets`: sets (or replaces) a secret.
pub async fn set_secret(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<SecretForm>,
) -> Response {
    change(&state, &visitor, &id, &form, true).await
}

/// `POST /projects/{id}/secrets/remove`: removes a secret.
pub async fn remove_secret(
    State(state): State<Console>,
    visitor: Visitor,
    Path(id): Path<String>,
    FormBody(form): FormBody<SecretForm>,
) -> Response {
    change(&state, &visitor, &id, &form, false).await
}

async fn change(
    state: &Console,
    visitor: &Visitor,
    id: &str,
    form: &SecretForm,
    set: bool,
) -> Response {
    let (_, project, _, _) = match owned(state, visitor, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !visitor.accepts(&form.csrf) {
        return forbidden(visitor);
    }
    let name = form.name.trim();
    let done = match crate::elsewhere::of(state, &project) {
        // Changed by the node serving the project (its copy is the one its code reads).
        Some(elsewhere) => elsewhere_change(&*elsewhere, &project, name, &form.value, set).await,
        None if set => secrets::set_for(state, &project, name, &form.value).await,
        None => secrets::unset_for(state, &project, name).await,
    };
    let (status, notice) = match done {
        Ok(()) if set => {
            tracing::info!(slug = %project.slug, name, "secret set from the console");
            (
                StatusCode::OK,
                Notice::Ok(format!(
                    "Set {name}. The project's code reads it with $os.getenv(\"{name}\")."
                )),
            )
        }
        Ok(()) => {
            tracing::info!(slug = %project.slug, name, "secret removed from the console");
            (StatusCode::OK, Notice::Ok(format!("Removed {name}.")))
        }
        Err(Error::Invalid(_, reason)) => (StatusCode::BAD_REQUEST, Notice::Error(reason)),
        Err(Error::Busy(reason)) => (StatusCode::SERVICE_UNAVAILABLE, Notice::Error(reason)),
        Err(Error::NotFound) => (
            StatusCode::NOT_FOUND,
            Notice::Error("This project has no such secret.".into()),
        ),
        Err(e) => return failure(visitor, e),
    };
    // The page is read again, so it lists the secrets as they are now.
    project_page(state, visitor, id, status, notice).await
}

/// A secret of `project` set (or removed) on the node that serves it, as the operator API's
/// `PUT`/`DELETE /v1/tenants/{slug}/secrets/{name}`.
async fn elsewhere_change(
    elsewhere: &dyn crate::elsewhere::Elsewhere,
    project: &warren_control_plane::TenantInfo,
    name: &str,
    value: &str,
    set: bool,
) -> Result<(), Error> {
    // Checked here too: the name goes into the request's path.
    if !warren_tenant::secrets::valid_name(name) {
        return Err(Error::Invalid(
            "name",
            warren_tenant::secrets::Error::Name.to_string(),
        ));
    }
    let (method, body, content_type) = if set {
        let body = serde_json::json!({ "value": value }).to_string();
        (Method::PUT, Body::from(body), Some("application/json"))
    } else {
        (Method::DELETE, Body::empty(), None)
    };
    let rest = format!("secrets/{name}");
    let answer = crate::elsewhere::run(elsewhere, project, method, &rest, content_type, body).await;
    match crate::elsewhere::done(answer).await {
        Ok(()) => Ok(()),
        Err((StatusCode::BAD_REQUEST, message)) => Err(Error::Invalid("name", message)),
        Err((StatusCode::NOT_FOUND, _)) => Err(Error::NotFound),
        Err((_, message)) => Err(Error::Busy(message)),
    }
}
