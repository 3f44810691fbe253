//! Local sign-in is not a backdoor: the name-and-email form works only with the token the
//! server made at start (in `local-signin-token` in its data directory, and in the link it
//! prints), given as a field or by the cookie the link sets. Without it, or with a wrong or
//! old one, nobody is signed in.

use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};

use crate::support::{TestServer, http, parse_cookie, set_cookie, set_cookies, status_code};

const TOKEN_COOKIE: &str = "tandem_signin_token";

fn ada() -> Value {
    json!({"name": "Ada", "email": "ada@example.com"})
}

fn with_token(mut body: Value, token: &str) -> Value {
    body["token"] = token.into();
    body
}

async fn post_json(server: &TestServer, body: Value, cookie: Option<&str>) -> reqwest::Response {
    let mut request = http()
        .post(format!("{}/auth/local", server.http_url()))
        .json(&body);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

async fn get(server: &TestServer, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = http().get(format!("{}{path}", server.http_url()));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// The user a response's session cookie signs in as, by `/api/me`.
async fn me(server: &TestServer, response: &reqwest::Response) -> Value {
    let cookies = set_cookies(response);
    let (session, _) = parse_cookie(set_cookie(&cookies, "tandem_session"));
    let answer = get(
        server,
        "/api/me",
        Some(&format!("tandem_session={session}")),
    )
    .await;
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

#[tokio::test]
async fn the_token_file_is_private_and_new_at_every_start() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let path = server.data_dir().join("local-signin-token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    let first = server.sign_in_token();
    assert!(
        first.len() >= 22
            && first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "at least 128 bits, URL-safe: {first:?}"
    );

    let server = server.restart(|_| {}).await;
    let second = server.sign_in_token();
    assert_ne!(first, second, "a fresh token at every start");
    let response = post_json(&server, with_token(ada(), &first), None).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        status_code(response).await,
        (403, "invalid_sign_in_token".to_owned()),
        "the last start's token ended with it"
    );
    let response = post_json(&server, with_token(ada(), &second), None).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn posting_without_the_token_signs_nobody_in() {
    let server = TestServer::start().await;
    let token = server.sign_in_token();

    let response = post_json(&server, ada(), None).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        status_code(response).await,
        (403, "sign_in_token_required".to_owned())
    );
    for wrong in [
        format!("{token}x"),
        token[..token.len() - 1].to_owned(),
        "guess".to_owned(),
    ] {
        let response = post_json(&server, with_token(ada(), &wrong), None).await;
        assert!(set_cookies(&response).is_empty());
        assert_eq!(
            status_code(response).await,
            (403, "invalid_sign_in_token".to_owned()),
            "{wrong}"
        );
    }
    // A made-up cookie is no better.
    let response = post_json(&server, ada(), Some(&format!("{TOKEN_COOKIE}=guess"))).await;
    assert_eq!(
        status_code(response).await,
        (403, "invalid_sign_in_token".to_owned())
    );

    // A form without the token gets the page saying where the link is, and no session.
    let response = http()
        .post(format!("{}/auth/local", server.http_url()))
        .form(&[("name", "Ada"), ("email", "ada@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(set_cookies(&response).is_empty());
    let page = response.text().await.unwrap();
    assert!(page.contains("local-signin-token"), "{page}");
    assert!(!page.contains("action=\"/auth/local\""), "no form: {page}");

    // The page itself shows no form, only where the link is.
    let page = get(&server, "/signin", None).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("local-signin-token"), "{page}");
    assert!(!page.contains("action=\"/auth/local\""), "{page}");
}

#[tokio::test]
async fn the_token_as_a_field_or_a_cookie_signs_in() {
    let server = TestServer::start().await;
    let token = server.sign_in_token();

    let response = post_json(&server, with_token(ada(), &token), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(me(&server, &response).await["email"], "ada@example.com");

    let cookie = format!("{TOKEN_COOKIE}={token}");
    let bob = json!({"name": "Bob", "email": "bob@example.com"});
    let response = post_json(&server, bob, Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(me(&server, &response).await["email"], "bob@example.com");

    let response = http()
        .post(format!("{}/auth/local", server.http_url()))
        .header(COOKIE, &cookie)
        .form(&[
            ("name", "Carol"),
            ("email", "carol@example.com"),
            ("return_to", "/home"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/home");
    assert_eq!(me(&server, &response).await["email"], "carol@example.com");
}

#[tokio::test]
async fn the_sign_in_link_hands_the_browser_a_strict_cookie() {
    let server = TestServer::start().await;
    let token = server.sign_in_token();
    let url = tandem_collab::auth::local::sign_in_url(&server.app, server.addr).unwrap();
    assert_eq!(url, format!("{}/signin?token={token}", server.http_url()));

    let response = http()
        .get(format!("{url}&return_to=/n/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[LOCATION],
        "/signin?return_to=%2Fn%2Fabc",
        "the token leaves the address bar"
    );
    let cookies = set_cookies(&response);
    let (value, attributes) = parse_cookie(set_cookie(&cookies, TOKEN_COOKIE));
    assert_eq!(value, token);
    for want in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            attributes.iter().any(|a| a == want),
            "{want}: {attributes:?}"
        );
    }

    // With the cookie the page shows the form, and never the token.
    let page = get(&server, "/signin", Some(&format!("{TOKEN_COOKIE}={token}"))).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("action=\"/auth/local\""), "{page}");
    assert!(!page.contains(&token));

    // A wrong link sets nothing and says why.
    let response = get(&server, "/signin?token=guess", None).await;
    assert_eq!(response.status(), 403);
    assert!(set_cookies(&response).is_empty());
    let page = response.text().await.unwrap();
    assert!(page.contains("not valid"), "{page}");
    assert!(!page.contains("action=\"/auth/local\""), "{page}");
}

#[tokio::test]
async fn a_browser_signs_in_from_the_printed_link() {
    let server = TestServer::start().await;
    let url = tandem_collab::auth::local::sign_in_url(&server.app, server.addr).unwrap();
    // A browser: keeps cookies, follows redirects.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = browser
        .get(format!("{url}&return_to=/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.url().query(), Some("return_to=%2Fapi%2Fme"));
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/auth/local\"")
    );
    // The form, as the page posts it: the token travels in the cookie alone.
    let me = browser
        .post(format!("{}/auth/local", server.http_url()))
        .form(&[
            ("name", "Ada"),
            ("email", "ada@example.com"),
            ("return_to", "/api/me"),
        ])
        .send()
        .await
        .unwrap();
    // The redirect to `return_to` went out with the new session cookie.
    assert_eq!(me.url().path(), "/api/me");
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
}

#[tokio::test]
async fn wrong_links_count_as_bad_tokens() {
    let server = TestServer::start_with(|c| c.auth.bad_tokens_per_minute = 2).await;
    for _ in 0..2 {
        assert_eq!(
            get(&server, "/signin?token=guess", None).await.status(),
            403
        );
    }
    let response = get(&server, "/signin?token=guess", None).await;
    assert_eq!(
        status_code(response).await,
        (429, "rate_limited".to_owned())
    );
}
