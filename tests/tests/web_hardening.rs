//! Issue 13, "Browser and sign-in": each attack against the real `tandem serve`, and the
//! safe answer. (The browser's side, CSP violations, sandboxed popups, markdown and framing,
//! is in `web.rs`'s Chromium run.)
//!
//! - DNS rebinding: a request whose `Host` names a host the server does not answer to gets
//!   421 with the hosts it does answer to: pages, sign-in, the API and WebSocket upgrades.
//! - Open redirect after sign-in: `return_to=/%09/evil.example` and its cousins go to `/`.
//! - Security headers: a CSP with `frame-ancestors`, `object-src` and `base-uri`, nosniff, a
//!   referrer policy and framing protection on every answer; a per-load style nonce on the
//!   app's page; the output frame sandboxed by its own policy.
//! - Rate limits behind a proxy: with `--trusted-proxies`, clients behind one proxy have
//!   buckets of their own; an untrusted peer's `X-Forwarded-For` is ignored; the per-account
//!   limit holds across addresses.
//! - Comment authors' emails: a signed-in stranger with the link sees names only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use reqwest::header::{HOST, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tandem_tests::TestServer;

/// A client that shows redirects instead of following them, and keeps no cookies.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The status and error code of an answer.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").into(),
        body["error"]["message"].as_str().unwrap_or("").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_host_are_refused() {
    let server = TestServer::start().await.unwrap();
    let base = server.http_url();
    let port = server.addr().port();
    let evil = format!("rebind.example:{port}");
    let token = server.sign_in_token().unwrap();
    let api_token = server.token_for("ada@example.com").await.unwrap();

    // What a page on rebind.example, re-resolved to 127.0.0.1, would try: the sign-in link,
    // the local sign-in, the API, a WebSocket.
    let link = http()
        .get(format!("{base}/signin?token={token}"))
        .header(HOST, &evil)
        .send()
        .await
        .unwrap();
    assert!(link.headers().get(SET_COOKIE).is_none());
    let (status, code, message) = refusal(link).await;
    assert_eq!((status, code.as_str()), (421, "host_not_allowed"));
    for allowed in ["localhost", "IP addresses", "--allowed-hosts"] {
        assert!(message.contains(allowed), "{message}");
    }
    let sign_in = http()
        .post(format!("{base}/auth/local"))
        .header(HOST, &evil)
        .json(&json!({"name": "Mallory", "email": "ada@example.com", "token": token}))
        .send()
        .await
        .unwrap();
    assert!(sign_in.headers().get(SET_COOKIE).is_none());
    assert_eq!(refusal(sign_in).await.0, 421);
    let api = http()
        .get(format!("{base}/api/notebooks"))
        .header(HOST, &evil)
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(api).await.0, 421);
    let upgrade = http()
        .get(format!("{base}/ws/anything?token={api_token}"))
        .header(HOST, &evil)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), 421);

    // Loopback names and addresses on any port are this server.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let ok = http()
            .get(format!("{base}/api/me"))
            .header(HOST, &host)
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_and_allowed_hosts_are_answered() {
    let server = TestServer::start_with(&[
        "--public-url",
        "https://tandem.example.com",
        "--allowed-hosts",
        "collab,.corp.example",
    ])
    .await
    .unwrap();
    let health = |host: &'static str| {
        http()
            .get(format!("{}/healthz", server.http_url()))
            .header(HOST, host)
            .send()
    };
    for host in [
        "tandem.example.com",
        "collab:8080",
        "nb.corp.example",
        "127.0.0.1",
    ] {
        assert_eq!(health(host).await.unwrap().status(), 200, "{host}");
    }
    for host in [
        "evil.example",
        "tandem.example.com.evil.example",
        "collab.evil.example",
    ] {
        let (status, _, message) = refusal(health(host).await.unwrap()).await;
        assert_eq!(status, 421, "{host}");
        assert!(message.contains("tandem.example.com"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_returns_only_to_this_site() {
    let server = TestServer::start().await.unwrap();
    let base = server.http_url();
    let token = server.sign_in_token().unwrap();

    // The link with `return_to=/%09/evil.example`: its form carries `/` on, not the tab path.
    let opened = http()
        .get(format!(
            "{base}/signin?token={token}&return_to=/%09/evil.example"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()[LOCATION], "/signin?return_to=%2F");

    let evil = [
        "/\t/evil.example",
        "/\n/evil.example",
        "\t//evil.example",
        "//evil.example",
        "/\\evil.example",
        "/.//evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ];
    for (i, return_to) in evil.iter().enumerate() {
        let email = format!("ada{i}@example.com");
        let form = [
            ("name", "Ada"),
            ("email", email.as_str()),
            ("token", token.as_str()),
            ("return_to", return_to),
        ];
        let posted = http()
            .post(format!("{base}/auth/local"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 303, "{return_to:?}");
        assert_eq!(posted.headers()[LOCATION], "/", "{return_to:?}");
    }
    let posted = http()
        .post(format!("{base}/auth/local"))
        .form(&[
            ("name", "Ada"),
            ("email", "ada@example.com"),
            ("token", token.as_str()),
            ("return_to", "/n/abc?x=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.headers()[LOCATION], "/n/abc?x=1");
}

/// A `--web-dir` with the two pages the headers are about.
fn web_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>t</title>\
         <script type=\"module\" nonce=\"__CSP_NONCE__\" src=\"/assets/app.js\"></script>",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("output-frame.html"),
        "<!doctype html><script>parent.postMessage({}, '*')</script>",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let web = web_dir();
    let server = TestServer::start_with(&["--web-dir", web.path().to_str().unwrap()])
        .await
        .unwrap();
    let base = server.http_url();
    let get = |path: &'static str| http().get(format!("{base}{path}")).send();

    for path in [
        "/home", "/n/abc", "/signin", "/api/me", "/healthz", "/nowhere",
    ] {
        let response = get(path).await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
    }

    // The app's page: a fresh style nonce per load, the same in the page and in its policy.
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let page = get("/home").await.unwrap();
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = page.text().await.unwrap();
        let nonce = html
            .split("nonce=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        assert_ne!(nonce, "__CSP_NONCE__");
        assert!(nonce.len() >= 22, "{nonce}");
        assert!(
            csp.contains(&format!("style-src 'self' 'nonce-{nonce}';")),
            "{csp}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1]);

    // The sign-in page lets its own inline style in by hash, nothing else.
    let signin = get("/signin").await.unwrap();
    let csp = signin.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("style-src 'self' 'sha256-"), "{csp}");

    // The frame outputs run in: sandboxed by its own policy, even opened on its own.
    let frame = get("/output-frame").await.unwrap();
    assert_eq!(frame.status(), 200);
    let csp = frame.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("sandbox allow-scripts allow-popups;"),
        "{csp}"
    );
    assert!(!csp.contains("allow-same-origin"), "{csp}");
    assert!(!csp.contains("allow-popups-to-escape-sandbox"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert_eq!(frame.headers()["referrer-policy"], "no-referrer");
}

/// One JSON sign-in attempt as from `client` behind a proxy (its `X-Forwarded-For`).
async fn attempt(server: &TestServer, forwarded_for: &str, email: &str) -> u16 {
    http()
        .post(format!("{}/auth/local", server.http_url()))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"name": "A", "email": email, "token": server.sign_in_token().unwrap()}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_have_buckets_of_their_own() {
    // The test itself is the proxy, on 127.0.0.1.
    let server = TestServer::start_with(&[
        "--trusted-proxies",
        "127.0.0.1/32",
        "--sign-in-per-minute",
        "3",
        "--bad-tokens-per-minute",
        "2",
    ])
    .await
    .unwrap();
    // Refused emails still count as attempts, and leave the per-account limit alone.
    for _ in 0..3 {
        assert_eq!(attempt(&server, "203.0.113.1", "not-an-email").await, 400);
    }
    assert_eq!(attempt(&server, "203.0.113.1", "not-an-email").await, 429);
    // Another client behind the same proxy is not locked out...
    assert_eq!(
        attempt(&server, "203.0.113.2", "ada@example.com").await,
        200
    );
    // ...and the locked-out one cannot get out by writing another address first: the proxy
    // appended the real one last.
    assert_eq!(
        attempt(&server, "198.51.100.7, 203.0.113.1", "ada@example.com").await,
        429
    );

    // Unknown tokens alike.
    let guess = |client: &'static str| {
        http()
            .get(format!("{}/api/me", server.http_url()))
            .header("x-forwarded-for", client)
            .bearer_auth("guess")
            .send()
    };
    for _ in 0..2 {
        assert_eq!(guess("203.0.113.3").await.unwrap().status(), 401);
    }
    assert_eq!(guess("203.0.113.3").await.unwrap().status(), 429);
    assert_eq!(guess("203.0.113.4").await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    let server = TestServer::start_with(&["--sign-in-per-minute", "3"])
        .await
        .unwrap();
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(attempt(&server, client, "not-an-email").await, 400);
    }
    let (status, code, _) = refusal(
        http()
            .post(format!("{}/auth/local", server.http_url()))
            .header("x-forwarded-for", "203.0.113.4")
            .header("forwarded", "for=203.0.113.4")
            .json(&json!({"name": "A", "email": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_account_limit_holds_across_addresses() {
    let server = TestServer::start_with(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--sign-in-per-account-per-minute",
        "3",
    ])
    .await
    .unwrap();
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(attempt(&server, client, "ada@example.com").await, 200);
    }
    assert_eq!(
        attempt(&server, "203.0.113.4", "Ada@Example.com").await,
        429
    );
    assert_eq!(
        attempt(&server, "203.0.113.4", "bob@example.com").await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_header_when_the_proxy_writes_that_one() {
    let server = TestServer::start_with(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--proxy-header",
        "forwarded",
        "--sign-in-per-minute",
        "1",
    ])
    .await
    .unwrap();
    let attempt = |forwarded: &'static str| {
        http()
            .post(format!("{}/auth/local", server.http_url()))
            .header("forwarded", forwarded)
            .json(&json!({"name": "A", "email": "x"}))
            .send()
    };
    // Without the sign-in token: 403, but counted all the same.
    assert_eq!(attempt("for=203.0.113.1").await.unwrap().status(), 403);
    assert_eq!(attempt("for=203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(
        attempt("for=\"[2001:db8::1]:4711\"")
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_viewers_see_commenters_names_not_their_emails() {
    let server = TestServer::start().await.unwrap();
    let owner = server.client_for("owner@example.com").await.unwrap();
    let ipynb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"id": "c1", "cell_type": "code", "metadata": {}, "source": "x = 1",
                   "outputs": [], "execution_count": null}],
    });
    let id = owner
        .create_notebook("Shared", Some(ipynb))
        .await
        .unwrap()
        .id;
    owner
        .send_json(
            Method::PUT,
            &format!("api/notebooks/{id}/sharing"),
            Some(json!({
                "general_access": "anyone_with_link",
                "link_role": "viewer",
                "grants": [
                    {"email": "carol@example.com", "role": "commenter"},
                    {"email": "dave@example.com", "role": "editor"},
                ],
            })),
        )
        .await
        .unwrap();
    let carol = server.client_for("carol@example.com").await.unwrap();
    carol
        .send_json(
            Method::POST,
            &format!("api/notebooks/{id}/comments"),
            Some(json!({"cell_id": "c1", "text": "why 1?"})),
        )
        .await
        .unwrap();

    // Eve signed in and has the link: a viewer.
    let eve = server.token_for("eve@example.com").await.unwrap();
    let as_eve = |path: String| {
        http()
            .get(format!("{}/{path}", server.http_url()))
            .bearer_auth(&eve)
            .send()
    };
    let sharing = as_eve(format!("api/notebooks/{id}/sharing")).await.unwrap();
    assert_eq!(sharing.status(), 403, "the sharing list is refused to her");
    for path in [
        format!("api/notebooks/{id}/comments"),
        format!("api/notebooks/{id}/ipynb?comments=true"),
    ] {
        let response = as_eve(path.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains("why 1?"), "{path}: {text}");
        assert!(!text.contains("carol@example.com"), "{path}: {text}");
        assert!(!text.contains("\"email\""), "{path}: {text}");
    }
    // Nor do commenters see each other's emails; editors do, as they see the sharing list.
    let as_carol = carol
        .send_json(Method::GET, &format!("api/notebooks/{id}/comments"), None)
        .await
        .unwrap();
    assert!(as_carol[0]["author"].get("email").is_none(), "{as_carol}");
    let dave = server.client_for("dave@example.com").await.unwrap();
    let as_dave = dave
        .send_json(Method::GET, &format!("api/notebooks/{id}/comments"), None)
        .await
        .unwrap();
    assert_eq!(as_dave[0]["author"]["email"], "carol@example.com");
}
