//! DNS rebinding against the real dev server: a page on `attacker.example` whose name now
//! resolves to 127.0.0.1 reaches the socket, but its requests carry `Host: attacker.example`,
//! and the `dev` profile answers only to loopback names.
#![allow(clippy::unwrap_used)]

use crate::support::{Site, client};

#[tokio::test]
async fn the_dev_server_refuses_a_rebound_host_name_with_400_and_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), &[]);
    let port = site.addr.port();
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
    ] {
        let response = client()
            .get(site.url("/login"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{host}");
        assert!(response.headers().get("set-cookie").is_none(), "{host}");
        let body = response.text().await.unwrap();
        assert!(body.contains("ALLOWED_HOSTS"), "{body}");
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = client()
            .get(site.url("/login"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
}
