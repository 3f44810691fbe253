//! `/metrics`, `/readyz` and `/healthz` on `tandem serve`: after edits and a cell run, the
//! collab counters and the in-process runtime's counters have moved, and the answer is the
//! Prometheus text format line by line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tandem_client::DocConnection;
use tandem_crdt::Notebook;
use tandem_tests::TestServer;
use tandem_tests::cluster::{metric, scrape_metrics};
use tandem_tests::require_kernel_venv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_edits_and_runs_and_parse_as_prometheus_text() {
    require_kernel_venv().unwrap();
    let server = TestServer::start().await.unwrap();
    let url = server.http_url();
    let http = reqwest::Client::new();
    let scrape = || async {
        scrape_metrics(&http, &url)
            .await
            .unwrap_or_else(|err| panic!("{err:#}"))
    };
    // The in-process runtime node starts beside the collab service (after checking the
    // kernel sandbox); its counters appear once it is up.
    let mut before = scrape().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&before, "tandem_runtime_executions_total").is_none()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        before = scrape().await;
    }
    let updates_before = metric(&before, "tandem_collab_updates_applied_total").unwrap();
    assert_eq!(metric(&before, "tandem_collab_connections"), Some(0.0));
    assert_eq!(
        metric(&before, "tandem_runtime_executions_total"),
        Some(0.0)
    );

    let client = server.client_for("ada@example.com").await.unwrap();
    let token = server.token_for("ada@example.com").await.unwrap();
    let id = client.create_notebook("metrics", None).await.unwrap().id;
    let conn = DocConnection::connect(&server.ws_url(), &id, Some(&token))
        .await
        .unwrap();
    conn.synced().await.unwrap();
    let notebook = Notebook::from_doc(conn.doc().clone());
    let cell = notebook.cells()[0].id.clone();
    for i in 0..5 {
        notebook.edit_source(&cell, 0, 0, &format!("{i}")).unwrap();
    }
    notebook.edit_source(&cell, 0, 5, "6 * 7").unwrap();
    // The runtime reads the source when the cell starts: let the edits reach the server first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = http
        .post(format!("{url}/api/notebooks/{id}/execute"))
        .bearer_auth(&token)
        .json(&json!({"cell_ids": [cell]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    conn.wait_until(
        |doc| {
            let nb = Notebook::from_doc(doc.clone()).to_ipynb();
            nb["cells"][0]["outputs"][0]["data"]["text/plain"] == "42"
        },
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    let after = scrape().await;
    assert!(metric(&after, "tandem_collab_updates_applied_total").unwrap() >= updates_before + 6.0);
    assert_eq!(
        metric(&after, "tandem_collab_connections"),
        Some(2.0),
        "observer + runtime"
    );
    assert!(metric(&after, "tandem_collab_rooms").unwrap() >= 1.0);
    assert!(metric(&after, "tandem_collab_fanout_seconds_count").unwrap() >= 1.0);
    assert!(metric(&after, "tandem_collab_store_append_seconds_count").unwrap() >= 1.0);
    assert!(metric(&after, "tandem_collab_outbound_queue_depth_count").unwrap() >= 1.0);
    assert_eq!(metric(&after, "tandem_runtime_executions_total"), Some(1.0));
    assert_eq!(
        metric(&after, "tandem_collab_runtime_calls_total{outcome=\"ok\"}"),
        Some(1.0)
    );

    for path in ["healthz", "readyz"] {
        let response = http.get(format!("{url}/{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "/{path}");
    }
}
