//! Crash test: `tandem serve` is killed with SIGKILL while clients type, then restarted on the
//! same data dir. Every edit any client saw broadcast before the crash must be there after it
//! (docs/design.md: updates are durable before they are broadcast).
//!
//! Each seeded round: two writers type into the same cell's source, one character per
//! transaction, each from its own alphabet; an observer records what it sees broadcast; once the
//! observer has seen typing from both, the server is SIGKILLed at a seeded moment while the
//! writers keep going. After a restart a fresh client must hold every character the observer
//! saw, in the same order, and each writer's characters must be an unbroken prefix of what it
//! typed (an update may be durable without having been broadcast, never the other way round).
//! Rounds run on the same data dir, so recovery after a recovery is covered too.

// Helpers here are test code too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tandem_client::DocConnection;
use tandem_tests::TestServer;
use yrs::{Array, Doc, GetString, Map, Out, Text, TextRef, Transact};

const ROUNDS: u64 = 5;
const WRITERS: usize = 2;
/// The cell every writer types into.
const CELL_ID: &str = "typed-cell";
/// How long the observer may wait to see typing, the server to die, a client to sync. None of
/// these is a performance assertion: they only turn a hang into a failure.
const WAIT: Duration = Duration::from_secs(30);

/// The first code point of each (round, writer) alphabet: ASCII, Greek, Cyrillic, Hiragana,
/// CJK, Hebrew, Georgian, Katakana and Hangul, so characters of 1 to 3 UTF-8 bytes are typed and every character tells who typed it
/// in which round.
const ALPHABET_STARTS: [u32; 10] = [
    0x61, 0x41, 0x3B1, 0x430, 0x3041, 0x4E00, 0x5D0, 0x10A0, 0x30A1, 0xAC00,
];
const ALPHABET_LEN: u32 = 24;

fn alphabet(round: u64, writer: usize) -> Vec<char> {
    let index = (round as usize * WRITERS + writer) % ALPHABET_STARTS.len();
    let start = ALPHABET_STARTS[index];
    (start..start + ALPHABET_LEN)
        .filter_map(char::from_u32)
        .collect()
}

/// A small deterministic generator (splitmix64) for the seeded pauses and kill moment.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The `source` Y.Text of the first cell, once the document has it.
fn source_text(doc: &Doc) -> Option<TextRef> {
    let cells = doc.get_or_insert_array("cells");
    let txn = doc.transact();
    let Some(Out::YMap(cell)) = cells.get(&txn, 0) else {
        return None;
    };
    match cell.get(&txn, "source") {
        Some(Out::YText(text)) => Some(text),
        _ => None,
    }
}

fn source_string(doc: &Doc) -> String {
    match source_text(doc) {
        Some(text) => text.get_string(&doc.transact()),
        None => String::new(),
    }
}

fn count_from(text: &str, alphabet: &[char]) -> usize {
    text.chars().filter(|c| alphabet.contains(c)).count()
}

/// Whether `needle` is a subsequence of `haystack` (same characters, same order, gaps allowed).
fn is_subsequence(needle: &str, haystack: &str) -> bool {
    let mut rest = haystack.chars();
    needle
        .chars()
        .all(|wanted| rest.by_ref().any(|c| c == wanted))
}

/// Types characters from `alphabet`, cycling, at the end of the cell's source until the
/// connection ends. Returns everything it typed, in order.
async fn type_until_closed(conn: DocConnection, alphabet: Vec<char>, seed: u64) -> String {
    let text = source_text(conn.doc()).expect("the writer's document has the cell");
    let mut rng = Rng(seed);
    let mut typed = String::new();
    let mut next = alphabet.iter().copied().cycle();
    while !conn.is_closed() {
        let ch = next.next().unwrap();
        {
            let mut txn = conn.doc().transact_mut();
            let end = text.len(&txn);
            text.insert(&mut txn, end, ch.encode_utf8(&mut [0; 4]));
        }
        typed.push(ch);
        // A fast typist: a few milliseconds between keystrokes, sometimes none.
        tokio::time::sleep(Duration::from_millis(rng.below(4))).await;
    }
    typed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_typing_loses_no_broadcast_edit() {
    let mut server = TestServer::start().await.unwrap();
    let client = server.client_for("crash@example.com").await.unwrap();
    let token = client.token().to_owned();
    let ipynb = json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{
            "id": CELL_ID, "cell_type": "code", "source": "# 1\n", "metadata": {},
            "outputs": [], "execution_count": null
        }]
    });
    let notebook = client
        .create_notebook("crash test", Some(ipynb))
        .await
        .unwrap();

    for round in 0..ROUNDS {
        let mut rng = Rng(round);
        let ws = server.ws_url();
        let alphabets: Vec<Vec<char>> = (0..WRITERS).map(|w| alphabet(round, w)).collect();

        let observer = DocConnection::connect(&ws, &notebook.id, Some(&token))
            .await
            .unwrap();
        observer.synced().await.unwrap();
        let before = source_string(observer.doc());
        assert!(
            before.starts_with("# 1\n"),
            "round {round}: the cell is {before:?}"
        );

        let mut writers = Vec::new();
        for (w, alphabet) in alphabets.iter().enumerate() {
            let conn = DocConnection::connect(&ws, &notebook.id, Some(&token))
                .await
                .unwrap();
            conn.synced().await.unwrap();
            let seed = round * 1000 + w as u64;
            writers.push(tokio::spawn(type_until_closed(
                conn,
                alphabet.clone(),
                seed,
            )));
        }

        // Kill only once typing is visibly under way from everyone, then at a seeded moment.
        let min_seen = 20 + rng.below(180) as usize;
        observer
            .wait_until(
                |doc| {
                    let text = source_string(doc);
                    alphabets.iter().all(|a| count_from(&text, a) >= min_seen)
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("round {round}: the observer saw no typing: {e}"));
        tokio::time::sleep(Duration::from_millis(rng.below(100))).await;
        server.kill_9().unwrap();

        tokio::time::timeout(WAIT, observer.closed())
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: the observer's connection outlived the server")
            });
        let seen = source_string(observer.doc());
        let mut typed = Vec::new();
        for writer in writers {
            typed.push(tokio::time::timeout(WAIT, writer).await.unwrap().unwrap());
        }

        server.restart().await.unwrap();
        let fresh = DocConnection::connect(&server.ws_url(), &notebook.id, Some(&token))
            .await
            .unwrap();
        fresh.synced().await.unwrap();
        let after = source_string(fresh.doc());

        assert!(
            is_subsequence(&seen, &after),
            "round {round}: edits the observer saw broadcast are missing after the crash\n\
             seen ({} chars): {seen:?}\nafter restart ({} chars): {after:?}",
            seen.chars().count(),
            after.chars().count()
        );
        for (w, alphabet) in alphabets.iter().enumerate() {
            let kept: String = after.chars().filter(|c| alphabet.contains(c)).collect();
            assert!(
                typed[w].starts_with(&kept),
                "round {round}: writer {w}'s surviving keystrokes are not a prefix of what it \
                 typed\nkept: {kept:?}\ntyped: {:?}",
                typed[w]
            );
            assert!(
                kept.chars().count() >= count_from(&seen, alphabet),
                "round {round}: writer {w} lost keystrokes"
            );
        }
        fresh.close().await;
        eprintln!(
            "round {round}: observer saw {} chars, {} survived, writers typed {:?}",
            seen.chars().count(),
            after.chars().count(),
            typed.iter().map(|t| t.chars().count()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn subsequence_check_catches_loss_and_reordering() {
    assert!(is_subsequence("ace", "abcde"));
    assert!(is_subsequence("", "x"));
    assert!(!is_subsequence("aec", "abcde"));
    assert!(!is_subsequence("abcdef", "abcde"));
}

#[test]
fn alphabets_are_disjoint() {
    let all: Vec<Vec<char>> = (0..ROUNDS)
        .flat_map(|r| (0..WRITERS).map(move |w| alphabet(r, w)))
        .collect();
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.len(), ALPHABET_LEN as usize);
        for b in &all[i + 1..] {
            assert!(a.iter().all(|c| !b.contains(c)));
        }
    }
}
