//! The project page's "Secrets" section: set a secret for the project's code to read with
//! `$os.getenv`, see the names that are set, remove one. Values are written, never shown.
//! Projects are looked up within the signed-in account only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
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
    let done = if set {
        secrets::set(&state.tenants, &project.slug, name, &form.value).await
    } else {
        secrets::unset(&state.tenants, &project.slug, name).await
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
        Err(Error::NotFound) => (
            StatusCode::NOT_FOUND,
            Notice::Error("This project has no such secret.".into()),
        ),
        Err(e) => return failure(visitor, e),
    };
    // The page is read again, so it lists the secrets as they are now.
    project_page(state, visitor, id, status, notice).await
}
