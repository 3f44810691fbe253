//! The execution routes and the control channel to the runtime, with a scripted runtime on
//! the control WebSocket (the real runtime's end-to-end tests live in tests/).

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tandem_protocol::runtime::{Body, Command, Execute, Outcome, Reply, Target};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::support::{TestServer, WAIT, control, post};

const SERVICE_TOKEN: &str = "test-service-credential";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.service_token = Some(SERVICE_TOKEN.to_owned())).await
}

#[tokio::test]
async fn execute_reaches_the_runtime_and_answers_what_it_queued() {
    let server = server().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner
        .create_notebook(
            "run",
            Some(json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
                {"id": "c1", "cell_type": "code", "source": "1+1", "metadata": {}, "outputs": [], "execution_count": null},
                {"id": "m1", "cell_type": "markdown", "source": "# hi", "metadata": {}},
                {"id": "c2", "cell_type": "code", "source": "2+2", "metadata": {}, "outputs": [], "execution_count": null},
            ]})),
        )
        .await
        .unwrap();
    let path = format!("/api/notebooks/{}/execute", nb.id);

    // Without a runtime: a clear 503, not a hang.
    let (status, body) = post(&server, owner.token(), &path, json!({"all": true})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("runtime_unavailable"))
    );

    let mut runtime = control(&server, SERVICE_TOKEN).await.unwrap();
    let scripted = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(Ws::Text(text))) = runtime.next().await {
            let command: Command = serde_json::from_str(&text).unwrap();
            let queued = match &command.body {
                Body::Execute(Execute {
                    target: Target::Cells(cells) | Target::All(cells),
                    ..
                }) => cells.clone(),
                _ => vec![],
            };
            let reply = Reply {
                request: command.request,
                outcome: Outcome::Ok { queued },
            };
            seen.push(command);
            runtime
                .send(Ws::Text(serde_json::to_string(&reply).unwrap().into()))
                .await
                .unwrap();
            if seen.len() == 4 {
                return seen;
            }
        }
        panic!("control channel ended early: {seen:?}");
    });

    // Run-all expands to the code cells, in order.
    let (status, body) = post(&server, owner.token(), &path, json!({"all": true})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"queued": ["c1", "c2"]}));
    let (status, body) = post(&server, owner.token(), &path, json!({"cell_ids": ["c2"]})).await;
    assert_eq!((status, body), (202, json!({"queued": ["c2"]})));
    for action in ["interrupt", "restart"] {
        let (status, _) = post(
            &server,
            owner.token(),
            &format!("/api/notebooks/{}/{action}", nb.id),
            json!({}),
        )
        .await;
        assert_eq!(status, 202);
    }
    let seen = tokio::time::timeout(WAIT, scripted).await.unwrap().unwrap();
    assert_eq!(seen[0].notebook_id.as_str(), nb.id);
    assert!(
        matches!(&seen[0].body, Body::Execute(Execute { target: Target::All(cells), .. })
        if cells == &["c1", "c2"])
    );
    // Who asked goes along by id and name (for "run by"); no state vector was sent.
    let me = owner.me().await.unwrap();
    assert!(
        matches!(&seen[0].body, Body::Execute(Execute { caller, state_vector: None, .. })
        if caller.user_id == me.id && caller.user_name == me.name)
    );
    assert!(matches!(
        &seen[1].body,
        Body::Execute(Execute {
            target: Target::Cells(_),
            ..
        })
    ));
    assert!(
        matches!(&seen[2].body, Body::Interrupt(_)) && matches!(&seen[3].body, Body::Restart(_))
    );
    // Each carries the caller and the notebook's rule for someone else's runtime, which the
    // runtime applies (it knows whose kernel runs).
    for command in &seen {
        let (user, access) = match &command.body {
            Body::Execute(Execute { caller, access, .. }) => (&caller.user_id, access),
            Body::Interrupt(interrupt) => (&interrupt.caller.user_id, &interrupt.access),
            Body::Restart(restart) => (&restart.caller.user_id, &restart.access),
            other => panic!("{other:?}"),
        };
        assert_eq!(user, &me.id);
        assert_eq!(access.owner_id, me.id);
        assert!(access.editors_may_run, "on unless the owner turns it off");
    }

    // Bad requests never reach the runtime.
    let (status, body) = post(&server, owner.token(), &path, json!({"cell_ids": ["m1"]})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_cell"))
    );
    let (status, _) = post(&server, owner.token(), &path, json!({})).await;
    assert_eq!(status, 400);
    let stranger = server.client("stranger@example.com").await;
    let (status, _) = post(&server, stranger.token(), &path, json!({"all": true})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_service_credential_is_for_runtimes_only() {
    let server = server().await;
    let owner = server.client("owner@example.com").await;
    let nb = owner.create_notebook("svc", None).await.unwrap();
    // Users cannot open the control channel.
    let refused = control(&server, owner.token()).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403)
    );
    // The service joins any notebook's document...
    let conn = server.connect_with_token(SERVICE_TOKEN, &nb.id).await;
    assert!(conn.is_synced());
    // ...but is no user of the REST API.
    let as_service = tandem_client::Client::new(&server.http_url(), SERVICE_TOKEN).unwrap();
    assert_eq!(
        as_service.list_notebooks().await.unwrap_err().status(),
        Some(403)
    );
    assert_eq!(as_service.me().await.unwrap_err().status(), Some(403));
}
