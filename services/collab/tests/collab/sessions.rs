//! Sign-in sessions: local sign-in (JSON and form), the session cookie and its attributes,
//! CSRF on cookie-authenticated changes, the WebSocket origin check, sign-out (one session or
//! everywhere) cutting live connections, when local sign-in is offered, and rate limits.

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tandem_collab::auth::config::LocalSignIn;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{
    RawSocket, Received, TestServer, expect_close, http, parse_cookie, receive, set_cookie,
    set_cookies, status_code,
};

/// A revoked connection is cut within a second; this allows a margin for a loaded machine.
const CUT_WITHIN: Duration = Duration::from_secs(2);

/// A browser's sign-in: the two cookies the server set.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    csrf: String,
}

impl Session {
    /// The `Cookie` header a browser would send back.
    fn cookie(&self) -> String {
        format!("tandem_session={}; tandem_csrf={}", self.id, self.csrf)
    }

    /// A request to `server` carrying the cookies and, when `csrf`, the CSRF header.
    fn request(
        &self,
        server: &TestServer,
        method: Method,
        path: &str,
        csrf: bool,
    ) -> reqwest::RequestBuilder {
        let request = http()
            .request(method, format!("{}{path}", server.http_url()))
            .header(COOKIE, self.cookie());
        if csrf {
            request.header("x-csrf-token", &self.csrf)
        } else {
            request
        }
    }
}

fn session_from(response: &Response) -> Session {
    let cookies = set_cookies(response);
    Session {
        id: parse_cookie(set_cookie(&cookies, "tandem_session")).0,
        csrf: parse_cookie(set_cookie(&cookies, "tandem_csrf")).0,
    }
}

/// Posts `body` to local sign-in at `base` as it is.
async fn post_sign_in(base: &str, body: Value) -> Response {
    http()
        .post(format!("{base}/auth/local"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Posts `body` to local sign-in on `server` with the server's sign-in token added.
async fn sign_in_response(server: &TestServer, mut body: Value) -> Response {
    body["token"] = server.sign_in_token().into();
    post_sign_in(&server.http_url(), body).await
}

/// Signs in with the JSON form of local sign-in.
async fn sign_in(server: &TestServer, email: &str) -> Session {
    let response = sign_in_response(server, json!({"name": "Ada", "email": email})).await;
    assert_eq!(response.status(), 200);
    session_from(&response)
}

/// Opens a WebSocket to `notebook` with `cookie` and, when given, an `Origin` header.
/// Returns the HTTP status when the upgrade is refused.
async fn cookie_socket(
    server: &TestServer,
    notebook: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    query: &str,
) -> Result<RawSocket, u16> {
    let mut request = format!("{}/{notebook}{query}", server.ws_url())
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert(COOKIE.as_str(), cookie.parse().unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(err) => panic!("websocket failed: {err}"),
    }
}

/// A socket that the server accepted and joined to the room (its sync step 1 arrived).
async fn joined(socket: Result<RawSocket, u16>) -> RawSocket {
    let mut socket = socket.unwrap_or_else(|status| panic!("upgrade refused with {status}"));
    assert!(matches!(receive(&mut socket).await, Received::Message(_)));
    socket
}

/// Waits for the server to close `socket` with 1008 within [`CUT_WITHIN`].
async fn assert_cut(socket: &mut RawSocket, since: Instant) {
    let (code, reason) = tokio::time::timeout(CUT_WITHIN, expect_close(socket))
        .await
        .expect("the connection outlived its session");
    assert_eq!(code, tandem_protocol::close::POLICY, "{reason}");
    assert!(since.elapsed() < CUT_WITHIN);
}

/// A notebook created by the session's user.
async fn notebook(server: &TestServer, session: &Session) -> String {
    let response = session
        .request(server, Method::POST, "/api/notebooks", true)
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn local_sign_in_sets_a_session_cookie() {
    let server = TestServer::start().await;
    let response = sign_in_response(
        &server,
        json!({"name": " Ada ", "email": "Ada@Example.com"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let cookies = set_cookies(&response);
    let me: Value = response.json().await.unwrap();
    assert_eq!(
        (me["email"].as_str(), me["name"].as_str()),
        (Some("ada@example.com"), Some("Ada"))
    );

    let (session, attributes) = parse_cookie(set_cookie(&cookies, "tandem_session"));
    assert!(
        session.len() >= 32,
        "a session id carries enough randomness"
    );
    for want in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            attributes.iter().any(|a| a == want),
            "tandem_session lacks {want}: {attributes:?}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a == "Secure"),
        "not over plain http"
    );
    // The page reads the CSRF token, so that cookie is not HttpOnly.
    let (csrf, attributes) = parse_cookie(set_cookie(&cookies, "tandem_csrf"));
    assert!(!csrf.is_empty() && csrf != session);
    assert!(attributes.iter().any(|a| a == "SameSite=Lax"));
    assert!(!attributes.iter().any(|a| a == "HttpOnly"));

    let session = Session { id: session, csrf };
    let response = session
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    // The same person signing in again is the same user.
    let again = sign_in(&server, "ada@example.com").await;
    let response = again
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    let again_me: Value = response.json().await.unwrap();
    assert_eq!(again_me["id"], me["id"]);
    // A made-up session id is nobody.
    let forged = Session {
        id: "forged".into(),
        csrf: "forged".into(),
    };
    let response = forged
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(status_code(response).await, (401, "unauthorized".into()));
}

#[tokio::test]
async fn form_sign_in_redirects_only_within_the_site() {
    let server = TestServer::start().await;
    let token = server.sign_in_token();
    for (i, (return_to, location)) in [
        (Some("/n/abc?x=1"), "/n/abc?x=1"),
        (Some("//evil.example/n/abc"), "/"),
        (Some("https://evil.example/"), "/"),
        (Some("/\\evil.example"), "/"),
        (Some("javascript:alert(1)"), "/"),
        // Browsers drop tabs and newlines from URLs: `/\t/evil.example` is `//evil.example`.
        (Some("/\t/evil.example"), "/"),
        (Some("/\n/evil.example"), "/"),
        (Some("/.//evil.example"), "/"),
        (Some("/n/a b"), "/n/a%20b"),
        (None, "/"),
    ]
    .into_iter()
    .enumerate()
    {
        // One account each: sign-ins per account are limited too.
        let email = format!("ada{i}@example.com");
        let mut form = vec![("name", "Ada"), ("email", &email), ("token", &token)];
        if let Some(to) = return_to {
            form.push(("return_to", to));
        }
        let response = http()
            .post(format!("{}/auth/local", server.http_url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{return_to:?}");
        assert_eq!(response.headers()[LOCATION], location, "{return_to:?}");
        let session = session_from(&response);
        let me = session
            .request(&server, Method::GET, "/api/me", false)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    // A form with a bad field answers the API's error, not a redirect.
    let response = http()
        .post(format!("{}/auth/local", server.http_url()))
        .form(&[
            ("name", "Ada"),
            ("email", "not-an-email"),
            ("token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(status_code(response).await, (400, "invalid_email".into()));
}

#[tokio::test]
async fn sign_in_checks_name_and_email() {
    let server = TestServer::start().await;
    let long = format!("{}@example.com", "a".repeat(200));
    let long_name = "n".repeat(201);
    for (body, code) in [
        (json!({"name": "Ada", "email": "ada"}), "invalid_email"),
        (
            json!({"name": "Ada", "email": "ada@localhost"}),
            "invalid_email",
        ),
        (
            json!({"name": "Ada", "email": "a b@example.com"}),
            "invalid_email",
        ),
        (json!({"name": "Ada", "email": ""}), "invalid_email"),
        (json!({"name": "Ada", "email": long}), "invalid_email"),
        (
            json!({"name": "", "email": "ada@example.com"}),
            "invalid_name",
        ),
        (
            json!({"name": "   ", "email": "ada@example.com"}),
            "invalid_name",
        ),
        (
            json!({"name": long_name, "email": "ada@example.com"}),
            "invalid_name",
        ),
        (json!({"email": "ada@example.com"}), "invalid_json"),
    ] {
        let response = sign_in_response(&server, body.clone()).await;
        assert!(
            set_cookies(&response).is_empty(),
            "{body}: no session for a refused sign-in"
        );
        assert_eq!(
            status_code(response).await,
            (400, code.to_owned()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn cookie_changes_need_the_csrf_token() {
    let server = TestServer::start().await;
    let session = sign_in(&server, "ada@example.com").await;
    let csrf = (403, "csrf".to_owned());

    let create = |with_token: bool| {
        session
            .request(&server, Method::POST, "/api/notebooks", with_token)
            .json(&json!({"title": "x"}))
            .send()
    };
    assert_eq!(status_code(create(false).await.unwrap()).await, csrf);
    let id = notebook(&server, &session).await;

    let sharing =
        json!({"general_access": "anyone_with_link", "link_role": "viewer", "grants": []});
    let path = format!("/api/notebooks/{id}/sharing");
    let put = |request: reqwest::RequestBuilder| request.json(&sharing).send();
    let response = put(session.request(&server, Method::PUT, &path, false))
        .await
        .unwrap();
    assert_eq!(status_code(response).await, csrf, "no token");
    let wrong = session
        .request(&server, Method::PUT, &path, false)
        .header("x-csrf-token", "not-the-token");
    assert_eq!(
        status_code(put(wrong).await.unwrap()).await,
        csrf,
        "wrong token"
    );
    // Another session's token is no good either.
    let other = sign_in(&server, "ada@example.com").await;
    let foreign = session
        .request(&server, Method::PUT, &path, false)
        .header("x-csrf-token", &other.csrf);
    assert_eq!(
        status_code(put(foreign).await.unwrap()).await,
        csrf,
        "other session's token"
    );
    let response = put(session.request(&server, Method::PUT, &path, true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["general_access"], "anyone_with_link");

    // Reading needs no token.
    let response = session
        .request(&server, Method::GET, &path, false)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Deleting does.
    let delete = format!("/api/notebooks/{id}");
    let response = session
        .request(&server, Method::DELETE, &delete, false)
        .send()
        .await
        .unwrap();
    assert_eq!(status_code(response).await, csrf);
    let response = session
        .request(&server, Method::DELETE, &delete, true)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn cookie_websockets_must_come_from_tandem() {
    let server = TestServer::start().await;
    let session = sign_in(&server, "ada@example.com").await;
    let id = notebook(&server, &session).await;
    let cookie = session.cookie();
    let own = format!("http://{}", server.addr);

    let foreign = cookie_socket(
        &server,
        &id,
        Some(&cookie),
        Some("https://evil.example"),
        "",
    )
    .await;
    assert_eq!(
        foreign.err(),
        Some(403),
        "another site cannot use the cookie"
    );
    let port_mismatch = format!("http://127.0.0.1:{}", server.addr.port().wrapping_add(1));
    let foreign = cookie_socket(&server, &id, Some(&cookie), Some(&port_mismatch), "").await;
    assert_eq!(foreign.err(), Some(403), "another port is another origin");
    joined(cookie_socket(&server, &id, Some(&cookie), Some(&own), "").await).await;
    // Not a browser: no Origin.
    joined(cookie_socket(&server, &id, Some(&cookie), None, "").await).await;

    // A token is not sent by the browser on its own, so its origin does not matter.
    let token = server.token("ada@example.com").await;
    let query = format!("?token={token}");
    joined(cookie_socket(&server, &id, None, Some("https://evil.example"), &query).await).await;
    // Without the cookie the foreign page is anonymous, and this notebook is restricted.
    let anonymous = cookie_socket(&server, &id, None, Some("https://evil.example"), "").await;
    assert_eq!(anonymous.err(), Some(401));

    // Signing in from another site's form is refused as well (login CSRF), token or not.
    let response = http()
        .post(format!("{}/auth/local", server.http_url()))
        .header("origin", "https://evil.example")
        .json(&json!({
            "name": "Mallory",
            "email": "mallory@example.com",
            "token": server.sign_in_token(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(set_cookies(&response).is_empty());
}

#[tokio::test]
async fn signing_out_ends_the_session_and_its_websockets() {
    let server = TestServer::start().await;
    let session = sign_in(&server, "ada@example.com").await;
    let other = sign_in(&server, "ada@example.com").await;
    let id = notebook(&server, &session).await;
    let mut socket =
        joined(cookie_socket(&server, &id, Some(&session.cookie()), None, "").await).await;
    let mut other_socket =
        joined(cookie_socket(&server, &id, Some(&other.cookie()), None, "").await).await;

    // Signing out is a change: another site cannot sign the user out.
    let response = session
        .request(&server, Method::POST, "/auth/signout", false)
        .send()
        .await
        .unwrap();
    assert_eq!(status_code(response).await, (403, "csrf".to_owned()));

    let start = Instant::now();
    let response = session
        .request(&server, Method::POST, "/auth/signout", true)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cookies = set_cookies(&response);
    for name in ["tandem_session", "tandem_csrf"] {
        let (value, attributes) = parse_cookie(set_cookie(&cookies, name));
        assert!(
            value.is_empty() && attributes.iter().any(|a| a == "Max-Age=0"),
            "{name} not cleared"
        );
    }
    assert_cut(&mut socket, start).await;

    let response = session
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the old cookie is useless");
    let again = cookie_socket(&server, &id, Some(&session.cookie()), None, "").await;
    assert_eq!(again.err(), Some(401));

    // The user's other session is untouched.
    let response = other
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    use futures_util::SinkExt;
    other_socket
        .send(tungstenite::Message::Ping(Vec::new().into()))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), expect_close(&mut other_socket))
            .await
            .is_err(),
        "the other session's socket stays open"
    );

    // A personal access token is not a session.
    let token = server.token("ada@example.com").await;
    let response = http()
        .post(format!("{}/auth/signout", server.http_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_code(response).await,
        (400, "not_a_session".to_owned())
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session() {
    let server = TestServer::start().await;
    let first = sign_in(&server, "ada@example.com").await;
    let second = sign_in(&server, "ADA@example.com").await;
    let bystander = sign_in(&server, "bob@example.com").await;
    let token = server.token("ada@example.com").await;
    let id = notebook(&server, &first).await;
    let mut first_socket =
        joined(cookie_socket(&server, &id, Some(&first.cookie()), None, "").await).await;
    let mut second_socket =
        joined(cookie_socket(&server, &id, Some(&second.cookie()), None, "").await).await;
    let query = format!("?token={token}");
    let mut token_socket = joined(cookie_socket(&server, &id, None, None, &query).await).await;

    let start = Instant::now();
    let response = first
        .request(&server, Method::POST, "/auth/signout?everywhere=true", true)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_cut(&mut first_socket, start).await;
    assert_cut(&mut second_socket, start).await;
    for session in [&first, &second] {
        let response = session
            .request(&server, Method::GET, "/api/me", false)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // Tokens are revoked on their own; other people stay signed in.
    let response = http()
        .get(format!("{}/api/me", server.http_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = bystander
        .request(&server, Method::GET, "/api/me", false)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), expect_close(&mut token_socket))
            .await
            .is_err(),
        "a token's socket outlives the sign-out"
    );
}

#[tokio::test]
async fn local_sign_in_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.auth.local_sign_in = LocalSignIn::Off).await;
    assert!(
        !server
            .data_dir()
            .join(tandem_collab::auth::local::TOKEN_FILE)
            .exists(),
        "no sign-in token is made when local sign-in is off"
    );
    let response = post_sign_in(
        &server.http_url(),
        json!({"name": "Ada", "email": "ada@example.com", "token": "anything"}),
    )
    .await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        status_code(response).await,
        (403, "local_sign_in_disabled".to_owned())
    );
    let providers: Value = http()
        .get(format!("{}/auth/providers", server.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(providers["local"], false);
}

#[tokio::test]
async fn local_sign_in_is_off_on_a_public_address_unless_asked_for() {
    let public = |mode: LocalSignIn| {
        move |c: &mut tandem_collab::Config| {
            c.listen = "0.0.0.0:0".parse().unwrap();
            c.auth.local_sign_in = mode;
        }
    };
    let body = json!({"name": "Ada", "email": "ada@example.com"});
    // Reached through loopback, but listening on every interface.
    let auto = TestServer::start_with(public(LocalSignIn::Auto)).await;
    let base = format!("http://127.0.0.1:{}", auto.addr.port());
    let response = post_sign_in(&base, body.clone()).await;
    assert_eq!(
        status_code(response).await,
        (403, "local_sign_in_disabled".to_owned())
    );

    // On a public address too, it takes the sign-in token.
    let on = TestServer::start_with(public(LocalSignIn::On)).await;
    let base = format!("http://127.0.0.1:{}", on.addr.port());
    let response = post_sign_in(&base, body.clone()).await;
    assert_eq!(
        status_code(response).await,
        (403, "sign_in_token_required".to_owned())
    );
    let mut with_token = body.clone();
    with_token["token"] = on.sign_in_token().into();
    assert_eq!(post_sign_in(&base, with_token).await.status(), 200);

    // The default test server listens on loopback: auto means on.
    let loopback = TestServer::start().await;
    assert_eq!(sign_in_response(&loopback, body).await.status(), 200);
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let server = TestServer::start_with(|c| c.auth.sign_in_per_minute = 3).await;
    let good = json!({"name": "Ada", "email": "ada@example.com"});
    // Failed attempts count too.
    let bad = json!({"name": "Ada", "email": "nope"});
    assert_eq!(sign_in_response(&server, bad).await.status(), 400);
    for _ in 0..2 {
        assert_eq!(sign_in_response(&server, good.clone()).await.status(), 200);
    }
    let response = sign_in_response(&server, good).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        status_code(response).await,
        (429, "rate_limited".to_owned())
    );
}

#[tokio::test]
async fn unknown_tokens_are_rate_limited() {
    let server = TestServer::start_with(|c| c.auth.bad_tokens_per_minute = 3).await;
    let token = server.token("ada@example.com").await;
    let me = |token: String| {
        http()
            .get(format!("{}/api/me", server.http_url()))
            .bearer_auth(token)
            .send()
    };
    for i in 0..3 {
        let response = me(format!("guess-{i}")).await.unwrap();
        assert_eq!(
            status_code(response).await,
            (401, "unauthorized".to_owned())
        );
    }
    let response = me("guess-3".into()).await.unwrap();
    assert_eq!(
        status_code(response).await,
        (429, "rate_limited".to_owned())
    );
    // The WebSocket's token is counted alike.
    let refused = cookie_socket(&server, "any", None, None, "?token=guess-4").await;
    assert_eq!(refused.err(), Some(429));
    // A valid token is not held up by the guesses.
    assert_eq!(me(token).await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_https_public_url_makes_cookies_secure_and_defines_the_origin() {
    let public = "https://tandem.example.com";
    let server =
        TestServer::start_with(|c| c.auth.public_url = Some(public.parse().unwrap())).await;
    let response =
        sign_in_response(&server, json!({"name": "Ada", "email": "ada@example.com"})).await;
    assert_eq!(response.status(), 200);
    let cookies = set_cookies(&response);
    for name in ["tandem_session", "tandem_csrf"] {
        let (_, attributes) = parse_cookie(set_cookie(&cookies, name));
        assert!(
            attributes.iter().any(|a| a == "Secure"),
            "{name}: {attributes:?}"
        );
    }
    let session = session_from(&response);
    let id = notebook(&server, &session).await;
    // Behind a proxy the Host is the proxy's business; the public URL is Tandem's origin.
    joined(cookie_socket(&server, &id, Some(&session.cookie()), Some(public), "").await).await;
    let own_host = format!("http://{}", server.addr);
    let refused = cookie_socket(&server, &id, Some(&session.cookie()), Some(&own_host), "").await;
    assert_eq!(refused.err(), Some(403));
}

#[tokio::test]
async fn sessions_expire() {
    let server = TestServer::start_with(|c| c.auth.session_ttl = Duration::from_secs(1)).await;
    let response =
        sign_in_response(&server, json!({"name": "Ada", "email": "ada@example.com"})).await;
    let cookies = set_cookies(&response);
    let (_, attributes) = parse_cookie(set_cookie(&cookies, "tandem_session"));
    assert!(
        attributes.iter().any(|a| a == "Max-Age=1"),
        "{attributes:?}"
    );
    let session = session_from(&response);
    let me = || {
        session
            .request(&server, Method::GET, "/api/me", false)
            .send()
    };
    assert_eq!(me().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        me().await.unwrap().status(),
        401,
        "the store refuses an expired session"
    );
}
