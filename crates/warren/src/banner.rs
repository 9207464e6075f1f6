//! What `warren serve` prints once it listens: where the console and the operator API are,
//! where the operator token is, and where mail goes.

use std::path::Path;

use warren_control_plane::operator::Origin;
use warren_control_plane::tenants::UrlScheme;

/// The platform host's base URL (`http://localhost:8090`), the port left out when default.
pub fn platform_url(urls: &UrlScheme) -> String {
    let default_port = if urls.scheme == "https" { 443 } else { 80 };
    match urls.port {
        Some(port) if port != default_port => format!("{}://{}:{port}", urls.scheme, urls.domain),
        _ => format!("{}://{}", urls.scheme, urls.domain),
    }
}

/// The lines after "Warren listening on …". `relay` is the platform relay (`None`: mail is
/// kept in the outbox).
pub fn lines(urls: &UrlScheme, data_dir: &Path, token: Origin, relay: Option<&str>) -> Vec<String> {
    let base = platform_url(urls);
    let data_dir = data_dir.display();
    let token = match token {
        Origin::Environment => "the token in WARREN_OPERATOR_TOKEN".to_string(),
        Origin::Stored | Origin::Generated => {
            format!(
                "the token in {data_dir}/{}",
                warren_control_plane::operator::TOKEN_FILE
            )
        }
    };
    let mail = match relay {
        Some(relay) => format!("sent through the relay {relay}"),
        None => format!("no relay: mail is kept in {data_dir}/outbox, read it at {base}/outbox"),
    };
    vec![
        format!("  Console:      {base}/"),
        format!("  Operator API: {base}/v1/ (Authorization: Bearer <{token}>)"),
        format!("  Mail:         {mail}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(scheme: &str, port: u16) -> UrlScheme {
        UrlScheme {
            scheme: scheme.into(),
            domain: "localhost".into(),
            port: Some(port),
        }
    }

    #[test]
    fn the_banner_names_console_api_token_and_mail_mode() {
        let shown = lines(
            &urls("http", 8090),
            Path::new("./warren_data"),
            Origin::Stored,
            None,
        );
        assert_eq!(
            shown,
            [
                "  Console:      http://localhost:8090/",
                "  Operator API: http://localhost:8090/v1/ (Authorization: Bearer <the token in ./warren_data/operator-token>)",
                "  Mail:         no relay: mail is kept in ./warren_data/outbox, read it at http://localhost:8090/outbox",
            ]
        );
        let shown = lines(
            &urls("https", 443),
            Path::new("/srv/w"),
            Origin::Environment,
            Some("smtp://mail.example.com:587"),
        );
        assert_eq!(shown[0], "  Console:      https://localhost/");
        assert!(shown[1].contains("WARREN_OPERATOR_TOKEN"));
        assert_eq!(
            shown[2],
            "  Mail:         sent through the relay smtp://mail.example.com:587"
        );
    }
}
