//! Sign-in with OpenID Connect against a real provider: the stock `oidc-provider` package on
//! Node (tests/interop/node/oidc_provider.mjs), driven through its own login and consent
//! pages by a cookie-keeping HTTP client standing in for the browser.
//!
//! The refusals are real too: forged and replayed states and codes, a callback finished in
//! another browser, and ID tokens the provider was made to mis-issue (its test-only hook
//! re-signs the next ID token with its own key after changing one claim, or corrupts the
//! signature), each refused with its status and error code, and without a session.
//!
//! Needs `TANDEM_NODE_MODULES` with `oidc-provider` and `jose` (scripts/test sets it).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::support::{TestServer, node_script};

/// The provider's name in Tandem's providers file.
const PROVIDER: &str = "test";
const CLIENT_ID: &str = "tandem";
const CLIENT_SECRET: &str = "test-client-secret";

/// Node, oidc-provider and key generation start in about a second; the margin is for CI.
const IDP_START: Duration = Duration::from_secs(30);

/// A running `oidc-provider`, killed when dropped.
struct Idp {
    issuer: String,
    http: reqwest::Client,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Idp {
    async fn start() -> Self {
        let (mut command, dir) = node_script("oidc_provider.mjs", &["oidc-provider", "jose"]);
        command
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("cannot run node");
        // Its log goes to the test's output, which the harness shows when the test fails.
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("oidc-provider: {line}");
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(IDP_START, stdout.next_line())
            .await
            .expect("oidc_provider.mjs did not start in time")
            .unwrap()
            .expect("oidc_provider.mjs exited before listening");
        let ready: Value = serde_json::from_str(&line).unwrap();
        // oidc-provider logs to stdout too; a closed pipe would kill it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("oidc-provider: {line}");
            }
        });
        Self {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            http: reqwest::Client::new(),
            _child: child,
            _dir: dir,
        }
    }

    /// Registers Tandem (on `server`) as a client whose ID tokens are signed with `alg`.
    /// `conform`: the ID token carries no email (it is at the userinfo endpoint).
    async fn register(&self, server: &TestServer, alg: &str, conform: bool) {
        let body = json!({
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [format!("{}/auth/oauth/{PROVIDER}/callback", server.http_url())],
                "id_token_signed_response_alg": alg,
            }],
            "conform_id_token_claims": conform,
        });
        self.post("/__test/clients", body).await;
    }

    /// Makes the provider mis-issue its next ID token (see oidc_provider.mjs).
    async fn tamper_next_id_token(&self, mode: &str) {
        self.post("/__test/next_id_token", json!({ "mode": mode }))
            .await;
    }

    async fn post(&self, path: &str, body: Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            response.text().await.unwrap()
        );
    }
}

/// A providers file naming `issuer`, in a folder kept alive by the returned guard.
fn providers_file(issuer: &str) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.toml");
    std::fs::write(
        &path,
        format!(
            "[[provider]]\n\
             name = \"{PROVIDER}\"\n\
             kind = \"oidc\"\n\
             label = \"Test IdP\"\n\
             issuer = \"{issuer}\"\n\
             client_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\n"
        ),
    )
    .unwrap();
    (path, dir)
}

/// A provider, Tandem configured with it, and Tandem registered at it.
struct Setup {
    idp: Idp,
    server: TestServer,
    _providers: tempfile::TempDir,
}

async fn setup_with(alg: &str, conform: bool) -> Setup {
    let idp = Idp::start().await;
    let (path, providers) = providers_file(&idp.issuer);
    let server = TestServer::start_with(|config| {
        config.auth.auth_providers = Some(path);
        // Every test signs in several times from 127.0.0.1.
        config.auth.sign_in_per_minute = 1000;
    })
    .await;
    idp.register(&server, alg, conform).await;
    Setup {
        idp,
        server,
        _providers: providers,
    }
}

async fn setup() -> Setup {
    setup_with("RS256", false).await
}

/// A browser: keeps cookies (per host, as browsers do), follows no redirect by itself.
struct Browser {
    http: reqwest::Client,
    tandem: String,
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            http,
            tandem: server.http_url(),
        }
    }

    /// Starts a sign-in at Tandem and goes through the provider's pages as `login`, up to the
    /// provider's redirect back to Tandem's callback, which is returned unvisited.
    async fn authorize(&self, return_to: &str, login: &str) -> String {
        let start = format!(
            "{}/auth/oauth/{PROVIDER}/start?return_to={}",
            self.tandem,
            url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
        );
        let mut response = self.http.get(start).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "start");
        let callback = format!("{}/auth/oauth/{PROVIDER}/callback", self.tandem);
        for _ in 0..20 {
            if response.status().is_redirection() {
                let location = location(&response);
                if location.starts_with(&callback) {
                    return location;
                }
                response = self.http.get(location).send().await.unwrap();
                continue;
            }
            let url = response.url().clone();
            let status = response.status();
            let page = response.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{url}: {page}");
            // The provider's login form, then its consent form.
            let action = attribute(&page, "action=\"").expect("a form");
            let action = url.join(&action).unwrap();
            let fields: Vec<(&str, &str)> = if page.contains("name=\"prompt\" value=\"login\"") {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            response = self.http.post(action).form(&fields).send().await.unwrap();
        }
        panic!("the provider never redirected back to Tandem");
    }

    /// Like [`authorize`](Self::authorize), but cancels at the provider's login page; returns
    /// the callback URL the provider then sends the browser to.
    async fn authorize_and_cancel(&self) -> String {
        let start = format!("{}/auth/oauth/{PROVIDER}/start", self.tandem);
        let mut response = self.http.get(start).send().await.unwrap();
        let callback = format!("{}/auth/oauth/{PROVIDER}/callback", self.tandem);
        for _ in 0..20 {
            if response.status().is_redirection() {
                let location = location(&response);
                if location.starts_with(&callback) {
                    return location;
                }
                response = self.http.get(location).send().await.unwrap();
                continue;
            }
            let url = response.url().clone();
            let page = response.text().await.unwrap();
            // The devInteractions page's "[ Cancel ]" link aborts the interaction.
            let action = attribute(&page, "action=\"").expect("a form");
            let abort = url.join(&format!("{action}/abort")).unwrap();
            response = self.http.get(abort).send().await.unwrap();
        }
        panic!("the provider never redirected back to Tandem");
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// `GET /api/me` with this browser's cookies.
    async fn me(&self) -> (StatusCode, Value) {
        let response = self.get(&format!("{}/api/me", self.tandem)).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn location(response: &reqwest::Response) -> String {
    let location = response.headers()[LOCATION].to_str().unwrap();
    response.url().join(location).unwrap().to_string()
}

/// The value of the first `name="…"`-style attribute in `html`, with entities decoded.
fn attribute(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#x2F;", "/")
            .replace("&#47;", "/")
            .replace("&amp;", "&"),
    )
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `url` with its query parameter `name` set to `value`.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// Checks a refused callback: the status, the error code, a message naming `reason`, no
/// session cookie, and still signed out.
async fn assert_refused(
    browser: &Browser,
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
    reason: &str,
) {
    let cookies = set_cookies(&response);
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(reason),
        "{message:?} does not say {reason:?}"
    );
    assert!(
        !cookies.iter().any(|c| c.starts_with("tandem_session=")),
        "a refused sign-in set a session cookie: {cookies:?}"
    );
    assert_eq!(browser.me().await.0, StatusCode::UNAUTHORIZED);
}

/// Visits the callback and checks that it signed the browser in as `email`.
async fn assert_signed_in(
    browser: &Browser,
    callback: &str,
    return_to: &str,
    email: &str,
) -> Value {
    let response = browser.get(callback).await;
    let cookies = set_cookies(&response);
    let status = response.status();
    let to = response.headers().get(LOCATION).cloned();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::SEE_OTHER, "{text}");
    assert_eq!(to.unwrap(), return_to);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("tandem_session=") && c.contains("HttpOnly")),
        "no session cookie in {cookies:?}"
    );
    let (status, me) = browser.me().await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], email);
    me
}

#[tokio::test]
async fn signs_in_with_a_real_openid_connect_provider() {
    let Setup { server, .. } = &setup().await;

    let listed: Value = reqwest::get(format!("{}/auth/providers", server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["providers"],
        json!([{"name": PROVIDER, "label": "Test IdP", "url": "/auth/oauth/test/start", "kind": "oidc"}])
    );

    let browser = Browser::new(server);
    let callback = browser.authorize("/n/abc?x=1", "ada@example.com").await;
    let me = assert_signed_in(&browser, &callback, "/n/abc?x=1", "ada@example.com").await;
    assert_eq!(me["name"], "Ada");

    // Signing in again, in another browser, is the same person.
    let other = Browser::new(server);
    let callback = other.authorize("//evil.example", "Ada@Example.com").await;
    let again = assert_signed_in(&other, &callback, "/", "ada@example.com").await;
    assert_eq!(again["id"], me["id"]);
}

#[tokio::test]
async fn es256_id_tokens_are_accepted() {
    let Setup { server, .. } = &setup_with("ES256", false).await;
    let browser = Browser::new(server);
    let callback = browser.authorize("/", "grace@example.com").await;
    assert_signed_in(&browser, &callback, "/", "grace@example.com").await;
}

#[tokio::test]
async fn the_email_comes_from_userinfo_when_the_id_token_has_none() {
    let Setup { server, .. } = &setup_with("RS256", true).await;
    let browser = Browser::new(server);
    let callback = browser.authorize("/", "linus@example.com").await;
    let me = assert_signed_in(&browser, &callback, "/", "linus@example.com").await;
    assert_eq!(me["name"], "Linus");
}

#[tokio::test]
async fn a_forged_state_is_refused_and_spoils_nothing() {
    let Setup { server, .. } = &setup().await;
    let browser = Browser::new(server);
    let callback = browser.authorize("/", "ada@example.com").await;
    // The real code with a state Tandem never issued.
    let forged = with_param(&callback, "state", "made-up-state");
    let response = browser.get(&forged).await;
    assert_refused(
        &browser,
        response,
        StatusCode::BAD_REQUEST,
        "invalid_state",
        "unknown",
    )
    .await;
    // The genuine answer still goes through.
    assert_signed_in(&browser, &callback, "/", "ada@example.com").await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let Setup { server, .. } = &setup().await;
    let browser = Browser::new(server);
    let callback = browser.authorize("/", "ada@example.com").await;
    assert_signed_in(&browser, &callback, "/", "ada@example.com").await;

    // The same browser again: the state was spent.
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        !set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("tandem_session="))
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_state");

    // Anyone else with the link.
    let replayer = Browser::new(server);
    let response = replayer.get(&callback).await;
    assert_refused(
        &replayer,
        response,
        StatusCode::BAD_REQUEST,
        "invalid_state",
        "already finished",
    )
    .await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_the_provider() {
    let Setup { server, .. } = &setup().await;
    let browser = Browser::new(server);
    let first = browser.authorize("/", "ada@example.com").await;
    assert_signed_in(&browser, &first, "/", "ada@example.com").await;

    // A fresh attempt (a valid state, bound to this browser) carrying the old, spent code.
    let attacker = Browser::new(server);
    let second = attacker.authorize("/", "mallory@example.com").await;
    let replay = with_param(&second, "code", &param(&first, "code"));
    let response = attacker.get(&replay).await;
    assert_refused(
        &attacker,
        response,
        StatusCode::BAD_REQUEST,
        "oauth_failed",
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn a_sign_in_finished_in_another_browser_is_refused() {
    let Setup { server, .. } = &setup().await;
    // Login CSRF: the attacker signs in as themselves and hands the callback link to a victim.
    let attacker = Browser::new(server);
    let callback = attacker.authorize("/", "mallory@example.com").await;
    let victim = Browser::new(server);
    let response = victim.get(&callback).await;
    assert_refused(
        &victim,
        response,
        StatusCode::BAD_REQUEST,
        "invalid_state",
        "another browser",
    )
    .await;
}

#[tokio::test]
async fn the_providers_refusal_is_reported() {
    let Setup { server, .. } = &setup().await;
    let browser = Browser::new(server);
    let callback = browser.authorize_and_cancel().await;
    assert_eq!(param(&callback, "error"), "access_denied");
    let response = browser.get(&callback).await;
    assert_refused(
        &browser,
        response,
        StatusCode::BAD_REQUEST,
        "provider_error",
        "access_denied",
    )
    .await;

    // A browser navigating there (it asks for HTML) sees the sign-in page with the reason,
    // under the page's own policy, and can start again.
    let callback = browser.authorize_and_cancel().await;
    let response = browser
        .http
        .get(&callback)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("style-src 'self' 'sha256-"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<p class=\"error\" role=\"alert\">"),
        "{page}"
    );
    assert!(page.contains("access_denied"), "{page}");
    assert!(page.contains("/auth/oauth/test/start"), "{page}");
    assert_eq!(browser.me().await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn mis_issued_id_tokens_are_refused() {
    let Setup { idp, server, .. } = &setup().await;
    let cases = [
        (
            "wrong_audience",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "audience",
        ),
        (
            "expired",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "expired",
        ),
        (
            "bad_signature",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "signature",
        ),
        (
            "wrong_nonce",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "nonce",
        ),
        (
            "wrong_issuer",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "issuer",
        ),
        (
            "unknown_key",
            StatusCode::UNAUTHORIZED,
            "invalid_id_token",
            "key the issuer does not publish",
        ),
        (
            "unverified_email",
            StatusCode::FORBIDDEN,
            "email_unverified",
            "not verified",
        ),
    ];
    for (mode, status, code, reason) in cases {
        let browser = Browser::new(server);
        let callback = browser.authorize("/", "ada@example.com").await;
        idp.tamper_next_id_token(mode).await;
        let response = browser.get(&callback).await;
        eprintln!("case {mode}");
        assert_refused(&browser, response, status, code, reason).await;
    }
    // The provider is honest again, and so is the sign-in.
    let browser = Browser::new(server);
    let callback = browser.authorize("/", "ada@example.com").await;
    assert_signed_in(&browser, &callback, "/", "ada@example.com").await;
}

#[tokio::test]
async fn an_unknown_provider_is_404() {
    let Setup { server, .. } = &setup().await;
    let browser = Browser::new(server);
    for path in ["start", "callback?state=x&code=y"] {
        let response = browser
            .get(&format!("{}/auth/oauth/nope/{path}", server.http_url()))
            .await;
        assert_refused(
            &browser,
            response,
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "nope",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unreachable_issuer_does_not_stop_the_server() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (path, _dir) = providers_file(&format!("http://127.0.0.1:{port}"));
    let server = TestServer::start_with(|config| {
        config.auth.auth_providers = Some(path);
        config.auth.sign_in_per_minute = 2;
    })
    .await;
    let browser = Browser::new(&server);
    let start = format!("{}/auth/oauth/{PROVIDER}/start", server.http_url());
    for _ in 0..2 {
        let response = browser.get(&start).await;
        assert_refused(
            &browser,
            response,
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            "Test IdP",
        )
        .await;
    }
    // Sign-in attempts are rate limited per address.
    let response = browser.get(&start).await;
    assert_refused(
        &browser,
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "sign-in",
    )
    .await;
}
