//! The Drive's API: files and folders, the quota, confinement (no `..`, absolute paths or
//! symbolic links out), one drive per user, and no anonymous access.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestServer;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// A signed-in user of the drive API.
struct User {
    base: String,
    token: String,
    http: reqwest::Client,
    id: String,
}

impl User {
    async fn new(server: &TestServer, email: &str) -> Self {
        let token = server.token(email).await;
        let http = reqwest::Client::new();
        let base = server.http_url();
        let me: Value = http
            .get(format!("{base}/api/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        User {
            base,
            token,
            http,
            id: me["id"].as_str().unwrap().to_owned(),
        }
    }

    fn request(&self, method: Method, route: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{route}", self.base))
            .query(&[("path", path)])
            .bearer_auth(&self.token)
    }

    async fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) -> (StatusCode, Value) {
        let response = self
            .request(Method::PUT, "/api/drive/file", path)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let response = self
            .request(Method::GET, "/api/drive/file", path)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    async fn list(&self, path: &str) -> (StatusCode, Value) {
        answer(
            self.request(Method::GET, "/api/drive", path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let (status, listing) = self.list(path).await;
        assert_eq!(status, StatusCode::OK, "{listing}");
        listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.request(Method::DELETE, "/api/drive/file", path)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn folder(&self, path: &str) -> (StatusCode, Value) {
        answer(
            self.request(Method::POST, "/api/drive/folder", path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/api/drive/rename", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"from": from, "to": to}))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn usage(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/api/drive/usage", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        answer(response).await.1
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn files_and_folders_can_be_uploaded_listed_moved_and_removed() {
    let server = TestServer::start().await;
    let alice = User::new(&server, ALICE).await;
    assert!(alice.names("").await.is_empty());

    let (status, entry) = alice.put("data/train.csv", "a,b\n1,2\n").await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["path"], "data/train.csv");
    assert_eq!(entry["size"], 8);
    assert_eq!(alice.names("").await, ["data"]);
    let (_, listing) = alice.list("data/").await;
    let file = &listing["entries"][0];
    assert_eq!(
        (file["name"].as_str(), file["is_dir"].as_bool()),
        (Some("train.csv"), Some(false))
    );
    assert!(file["modified"].as_str().unwrap().ends_with('Z'));

    let (status, bytes) = alice.get("data/train.csv").await;
    assert_eq!(
        (status, bytes.as_slice()),
        (StatusCode::OK, b"a,b\n1,2\n".as_slice())
    );
    // Replacing a file answers 200.
    assert_eq!(alice.put("data/train.csv", "x").await.0, StatusCode::OK);
    assert_eq!(alice.get("data/train.csv").await.1, b"x");

    assert_eq!(alice.folder("models").await.0, StatusCode::CREATED);
    let (status, body) = alice.folder("models").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_exists")
    );
    let (status, moved) = alice.rename("data/train.csv", "models/t.csv").await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["path"], "models/t.csv");
    assert_eq!(alice.get("data/train.csv").await.0, StatusCode::NOT_FOUND);
    assert_eq!(alice.put("data/other", "yy").await.0, StatusCode::CREATED);
    let (status, body) = alice.rename("data/other", "models/t.csv").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_exists")
    );
    let (status, body) = alice.rename("data", "data/inner").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    assert_eq!(alice.usage().await["used"], 3);

    // Folders go with everything in them.
    assert_eq!(alice.delete("models").await, StatusCode::NO_CONTENT);
    assert_eq!(alice.names("").await, ["data"]);
    assert_eq!(alice.delete("models").await, StatusCode::NOT_FOUND);
    let (status, body) = alice.list("nowhere").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = alice.list("data/other").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_a_folder")
    );
    let (status, _) = alice.get("data").await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The root itself cannot be removed.
    assert_eq!(alice.delete("").await, StatusCode::BAD_REQUEST);
    let usage = alice.usage().await;
    assert_eq!(
        (usage["used"].as_u64(), usage["quota"].as_u64()),
        (Some(2), Some(1024 << 20))
    );
}

#[tokio::test]
async fn uploads_past_the_quota_are_refused_and_leave_nothing() {
    let server = TestServer::start_with(|config| config.drive.drive_quota_mib = 1).await;
    let alice = User::new(&server, ALICE).await;
    assert_eq!(
        alice.put("a.bin", vec![1; 600 << 10]).await.0,
        StatusCode::CREATED
    );
    let (status, body) = alice.put("b.bin", vec![2; 600 << 10]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded")
    );
    assert_eq!(alice.names("").await, ["a.bin"]);
    assert_eq!(alice.usage().await["used"], 600 << 10);
    // Replacing a file counts only the difference.
    assert_eq!(
        alice.put("a.bin", vec![3; 900 << 10]).await.0,
        StatusCode::OK
    );

    // A chunked upload (no length up front) is stopped once it passes the quota.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /api/drive/file?path=c.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        alice.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'z'; 64 << 10];
    for _ in 0..4 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if tcp.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("quota_exceeded"), "{reply}");
    assert_eq!(
        alice.names("").await,
        ["a.bin"],
        "nothing is kept of a refused upload"
    );
    assert_eq!(alice.usage().await["used"], 900 << 10);
}

#[tokio::test]
async fn paths_cannot_leave_the_drive() {
    let server = TestServer::start().await;
    let alice = User::new(&server, ALICE).await;
    assert_eq!(alice.put("ok.txt", "fine").await.0, StatusCode::CREATED);
    for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "./x", "a\0b"] {
        let (status, body) = alice.put(bad, "no").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_path"),
            "{bad:?}"
        );
        let (status, _) = alice.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        let (status, _) = alice.list(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let (status, body) = alice.rename("ok.txt", "../../escaped").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );

    // A kernel can plant symbolic links in its drive; the API never follows them.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "server secret").unwrap();
    let folder = server.app.config.drive.folder().join(&alice.id);
    std::os::unix::fs::symlink(outside.path(), folder.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), folder.join("s")).unwrap();
    for (path, what) in [
        ("out/secret", "through a linked folder"),
        ("s", "a linked file"),
    ] {
        let (status, bytes) = alice.get(path).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let (status, body) = alice.list("out").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let (status, body) = alice.put("out/planted", "x").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let (status, _) = alice.rename("out/secret", "mine").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(alice.folder("out/sub").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(alice.names("").await, ["ok.txt"], "links are not listed");
    // Removing a link removes the link only.
    assert_eq!(alice.delete("out").await, StatusCode::NO_CONTENT);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing was written or removed outside the drive"
    );
}

#[tokio::test]
async fn each_user_sees_only_their_own_drive_and_anonymous_callers_none() {
    let server = TestServer::start().await;
    let alice = User::new(&server, ALICE).await;
    let bob = User::new(&server, BOB).await;
    assert_eq!(
        alice.put("private.txt", "alice's").await.0,
        StatusCode::CREATED
    );
    assert!(bob.names("").await.is_empty());
    assert_eq!(bob.get("private.txt").await.0, StatusCode::NOT_FOUND);
    assert_eq!(bob.delete("private.txt").await, StatusCode::NOT_FOUND);
    assert_eq!(bob.usage().await["used"], 0);
    // Bob cannot reach Alice's folder by naming it.
    let (status, _) = bob.get(&format!("../{}/private.txt", alice.id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(alice.get("private.txt").await.1, b"alice's");

    let anonymous = reqwest::Client::new();
    for (method, route) in [
        (Method::GET, "/api/drive"),
        (Method::GET, "/api/drive/file?path=private.txt"),
        (Method::PUT, "/api/drive/file?path=x"),
        (Method::DELETE, "/api/drive/file?path=private.txt"),
        (Method::POST, "/api/drive/folder?path=x"),
        (Method::GET, "/api/drive/usage"),
    ] {
        let response = anonymous
            .request(method.clone(), format!("{}{route}", server.http_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {route}"
        );
    }
    let response = anonymous
        .post(format!("{}/api/drive/rename", server.http_url()))
        .json(&json!({"from": "private.txt", "to": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(alice.names("").await, ["private.txt"]);
}
