//! `wss://`: the client against a local TLS WebSocket server whose self-signed certificate
//! (made here with rcgen) it is told to trust, and refusing the same server when not told.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_client::rustls;
use tandem_client::yrs::encoding::read::Cursor;
use tandem_client::yrs::sync::{Message, MessageReader, SyncMessage};
use tandem_client::yrs::updates::decoder::DecoderV1;
use tandem_client::yrs::updates::encoder::Encode;
use tandem_client::yrs::{Doc, GetString, ReadTxn, Text, Transact};
use tandem_client::{ConnectOptions, ConnectionError, DocConnection};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(10);

/// A certificate for `localhost` and its key.
fn certificate() -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    (certified.cert.der().clone(), key)
}

/// Accepts TLS WebSocket connections and answers each client's sync step 1 with a document
/// holding "over tls".
async fn serve(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> u16 {
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust us aborts the handshake here.
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
                let doc = Doc::new();
                doc.get_or_insert_text("t")
                    .insert(&mut doc.transact_mut(), 0, "over tls");
                while let Some(Ok(frame)) = ws.next().await {
                    let data = frame.into_data();
                    let mut decoder = DecoderV1::new(Cursor::new(&data));
                    for message in MessageReader::new(&mut decoder) {
                        if let Ok(Message::Sync(SyncMessage::SyncStep1(sv))) = message {
                            let update = doc.transact().encode_state_as_update_v1(&sv);
                            let reply = Message::Sync(SyncMessage::SyncStep2(update)).encode_v1();
                            ws.send(WsMessage::Binary(reply.into())).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn wss_works_with_the_roots_it_is_given() {
    let (cert, key) = certificate();
    let port = serve(cert.clone(), key).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = DocConnection::connect_with_tls(
        &format!("wss://localhost:{port}/ws"),
        "nb",
        ConnectOptions::default(),
        Some(Arc::new(tls)),
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, conn.synced())
        .await
        .unwrap()
        .unwrap();
    let text = conn.doc().get_or_insert_text("t");
    assert_eq!(text.get_string(&conn.doc().transact()), "over tls");
}

#[tokio::test]
async fn wss_refuses_a_certificate_it_was_not_told_to_trust() {
    let (cert, key) = certificate();
    let port = serve(cert, key).await;
    // The default: webpki roots, which do not include a self-signed certificate.
    let err = DocConnection::connect(&format!("wss://localhost:{port}/ws"), "nb", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectionError::WebSocket(_)) && err.to_string().contains("certificate"),
        "{err}"
    );
}
