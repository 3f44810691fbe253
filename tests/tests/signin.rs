//! Local sign-in through the real binary, as a person or a script meets it: `tandem serve`
//! prints `Sign in at http://…/signin?token=…` on stdout and writes the same token, mode 0600,
//! to `local-signin-token` in `--data`; the printed link signs a browser in, a restart makes a
//! new one, and a POST without the token signs nobody in. With `tandem collab` nodes on Redis,
//! the link one node printed works on another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tandem_tests::cluster::Cluster;
use tandem_tests::{SIGN_IN_TOKEN_FILE, TestServer};

/// A client that shows redirects instead of following them, and keeps no cookies: each step
/// of the browser's part is visible.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The token in a `…/signin?token=TOKEN` link.
fn token_of(url: &str) -> &str {
    url.split_once("/signin?token=")
        .unwrap_or_else(|| panic!("not a sign-in link: {url}"))
        .1
}

/// What a browser does with the printed link, against `base` (the node it talks to): open it
/// (the token moves into a cookie), post the form it then shows, and read `/api/me` with the
/// session it got.
async fn sign_in_with_link(base: &str, token: &str, email: &str) -> Value {
    let http = http();
    let opened = http
        .get(format!("{base}/signin?token={token}&return_to=/home"))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()[LOCATION], "/signin?return_to=%2Fhome");
    let cookie = opened.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("tandem_signin_token="), "{cookie}");

    let page = http
        .get(format!("{base}/signin?return_to=%2Fhome"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/auth/local\"")
    );
    let posted = http
        .post(format!("{base}/auth/local"))
        .header(COOKIE, &cookie)
        .form(&[("name", "Ada"), ("email", email), ("return_to", "/home")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303);
    assert_eq!(posted.headers()[LOCATION], "/home");
    let session = posted
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("tandem_session="))
        .expect("a session cookie");
    let me = http
        .get(format!("{base}/api/me"))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    me.json().await.unwrap()
}

/// Status and error code of a JSON answer.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_link_signs_in_and_nothing_else_does() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = TestServer::start().await.unwrap();
    let url = server.sign_in_url().unwrap();
    assert!(
        url.starts_with(&format!("{}/signin?token=", server.http_url())),
        "{url}"
    );
    let token = token_of(&url).to_owned();
    assert_eq!(
        server.sign_in_token().unwrap(),
        token,
        "the file holds the printed token"
    );
    let file = server.data_dir().join(SIGN_IN_TOKEN_FILE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Reaching the port is not enough.
    let post = |body: Value| {
        http()
            .post(format!("{}/auth/local", server.http_url()))
            .json(&body)
            .send()
    };
    let ada = json!({"name": "Ada", "email": "ada@example.com"});
    assert_eq!(
        refusal(post(ada.clone()).await.unwrap()).await,
        (403, "sign_in_token_required".into())
    );
    let mut wrong = ada.clone();
    wrong["token"] = format!("{token}0").into();
    assert_eq!(
        refusal(post(wrong).await.unwrap()).await,
        (403, "invalid_sign_in_token".into())
    );

    let me = sign_in_with_link(&server.http_url(), &token, "ada@example.com").await;
    assert_eq!(me["email"], "ada@example.com");

    // A script signs in with the token from the file.
    let mut with_token = json!({"name": "Bob", "email": "bob@example.com"});
    with_token["token"] = server.sign_in_token().unwrap().into();
    assert_eq!(post(with_token).await.unwrap().status(), 200);

    // A restart prints a new link; the old one is dead.
    server.restart().await.unwrap();
    let new_url = server.sign_in_url().unwrap();
    assert_ne!(new_url, url);
    let old = http()
        .get(format!("{}/signin?token={token}", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 403);
    let me = sign_in_with_link(&server.http_url(), token_of(&new_url), "ada@example.com").await;
    assert_eq!(me["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_printed_by_one_collab_node_works_on_another() {
    let mut cluster = Cluster::new().unwrap();
    let a = cluster.start_collab(&[]).await.unwrap();
    let b = cluster.start_collab(&[]).await.unwrap();
    let url_a = cluster.collabs[a].sign_in_url().unwrap();
    let url_b = cluster.collabs[b].sign_in_url().unwrap();
    assert_ne!(
        token_of(&url_a),
        token_of(&url_b),
        "each node makes its own"
    );
    let me = sign_in_with_link(
        &cluster.collabs[b].http_url(),
        token_of(&url_a),
        "ada@example.com",
    )
    .await;
    assert_eq!(me["email"], "ada@example.com");
}
