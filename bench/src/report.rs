//! Turning measurements into the markdown table that goes into `docs/benchmarks.md`.

use std::fmt::Write as _;

use crate::exec::ExecResult;
use crate::idle::IdleResult;
use crate::sys::Memory;
use crate::typing::{RENEWAL, TypingConfig, TypingResult};

/// One line of the table: one server under one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// The server's name.
    pub server: String,
    /// `typing` or `idle`.
    pub scenario: String,
    /// Connected clients.
    pub clients: usize,
    /// Edits per second per client (typing only).
    pub rate: Option<f64>,
    /// Deliveries per second (typing only).
    pub delivered_per_s: Option<f64>,
    /// Delivery latency percentiles in ms: p50, p99, max (typing only).
    pub latency_ms: Option<[f64; 3]>,
    /// p99 latency of deliveries between clients of different collab nodes, in ms (typing
    /// on several nodes only).
    pub cross_node_p99_ms: Option<f64>,
    /// Server CPU seconds per 1,000 deliveries (typing only).
    pub cpu_per_1k: Option<f64>,
    /// Server memory at the end of the scenario.
    pub memory: Memory,
    /// What else a reader needs: losses, baseline memory, per-connection cost.
    pub note: String,
}

impl Row {
    /// The row for a typing run.
    pub fn typing(server: &str, config: &TypingConfig, result: &TypingResult) -> Row {
        let secs = result.window.as_secs_f64().max(1e-9);
        let lat = &result.latencies_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency_ms = (!lat.is_empty()).then(|| {
            [
                ms(percentile(lat, 50.0)),
                ms(percentile(lat, 99.0)),
                ms(*lat.last().unwrap_or(&0)),
            ]
        });
        let cpu_per_1k =
            (result.delivered > 0).then(|| result.server_cpu_s / result.delivered as f64 * 1000.0);
        let lost = result.expected.saturating_sub(result.delivered);
        let cross = &result.cross_node_us;
        let cross_node_p99_ms = (!cross.is_empty()).then(|| ms(percentile(cross, 99.0)));
        let presence = if config.presence {
            let watchers = config.clients.saturating_sub(config.typists).max(1) as f64;
            let cycles = secs / RENEWAL.as_secs_f64();
            format!(
                "; awareness frames per watcher per {} s renewal cycle: {:.0}",
                RENEWAL.as_secs(),
                result.watcher_awareness_frames as f64 / watchers / cycles
            )
        } else {
            String::new()
        };
        Row {
            server: server.to_owned(),
            scenario: if config.presence {
                "presence"
            } else {
                "typing"
            }
            .into(),
            clients: config.clients,
            rate: Some(config.rate),
            delivered_per_s: Some(result.delivered as f64 / secs),
            latency_ms,
            cross_node_p99_ms,
            cpu_per_1k,
            memory: result.memory,
            note: format!(
                "{} edits sent in {:.1} s; {} of {} deliveries arrived{}{presence}",
                result.sent,
                secs,
                result.delivered,
                result.expected,
                if lost > 0 {
                    format!(" ({lost} missing after the drain)")
                } else {
                    String::new()
                }
            ),
        }
    }

    /// The row for an idle-connections run.
    pub fn idle(server: &str, result: &IdleResult) -> Row {
        let per_conn_kib = (result.after.rss_mib - result.before.rss_mib) * 1024.0
            / result.connections.max(1) as f64;
        Row {
            server: server.to_owned(),
            scenario: "idle".into(),
            clients: result.connections,
            rate: None,
            delivered_per_s: None,
            latency_ms: None,
            cross_node_p99_ms: None,
            cpu_per_1k: None,
            memory: result.after,
            note: format!(
                "RSS {:.1} MiB before connecting, {:.1} KiB per connection; opened in {:.1} s",
                result.before.rss_mib, per_conn_kib, result.connect_s
            ),
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The markdown section: command, machine, table, notes, and the CPU ratio when both servers
/// ran the typing scenario.
pub fn markdown(rows: &[Row], command: &str, machine: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`  ");
    let _ = writeln!(
        out,
        "Machine: {machine} (bench clients and server share it)\n"
    );
    // The cross-node column only when some run had several nodes.
    let cross = rows.iter().any(|r| r.cross_node_p99_ms.is_some());
    let _ = writeln!(
        out,
        "| server | scenario | clients | rate (edits/s/client) | delivered/s | p50 ms | p99 ms | max ms |{} CPU s per 1k delivered | RSS MiB (peak) |",
        if cross { " cross-node p99 ms |" } else { "" }
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|{}---:|---:|",
        if cross { "---:|" } else { "" }
    );
    let dash = || "–".to_string();
    for row in rows {
        let [p50, p99, max] = match row.latency_ms {
            Some(l) => l.map(|v| format!("{v:.2}")),
            None => [dash(), dash(), dash()],
        };
        let cross_p99 = match (cross, row.cross_node_p99_ms) {
            (false, _) => String::new(),
            (true, Some(p99)) => format!(" {p99:.2} |"),
            (true, None) => " – |".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {p50} | {p99} | {max} |{cross_p99} {} | {:.1} ({:.1}) |",
            row.server,
            row.scenario,
            row.clients,
            row.rate.map_or_else(dash, |r| format!("{r}")),
            row.delivered_per_s.map_or_else(dash, |d| format!("{d:.0}")),
            row.cpu_per_1k.map_or_else(dash, |c| format!("{c:.4}")),
            row.memory.rss_mib,
            row.memory.peak_mib,
        );
    }
    let _ = writeln!(out);
    for row in rows {
        let _ = writeln!(out, "- {} / {}: {}", row.server, row.scenario, row.note);
    }
    // One comparison per run both servers made (a scenario at one size).
    let mut runs: Vec<(&str, usize)> = rows
        .iter()
        .filter(|r| r.cpu_per_1k.is_some())
        .map(|r| (r.scenario.as_str(), r.clients))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    for (scenario, clients) in runs {
        let cpu = |server_prefix: &str| {
            rows.iter()
                .find(|r| {
                    r.scenario == scenario
                        && r.clients == clients
                        && r.server.starts_with(server_prefix)
                })
                .and_then(|r| r.cpu_per_1k)
        };
        if let (Some(tandem), Some(node)) = (cpu("Tandem"), cpu("y-websocket"))
            && tandem > 0.0
            && node > 0.0
        {
            let (factor, word) = if node >= tandem {
                (node / tandem, "less")
            } else {
                (tandem / node, "more")
            };
            let _ = writeln!(
                out,
                "- Server CPU per delivered update, {scenario} with {clients} clients: Tandem \
                 uses {factor:.1}× {word} than the reference."
            );
        }
    }
    out
}

/// Issue 3's goals for Tandem's execution path: first execute ready, `1+1` p50, 100k prints.
const EXEC_GOALS: (f64, f64, f64) = (0.150, 2.0, 0.5);

/// The execution section: command, machine, one row per system, notes and the goals.
pub fn exec_markdown(results: &[ExecResult], command: &str, machine: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`  ");
    let _ = writeln!(
        out,
        "Machine: {machine} (bench clients, server and kernels share it)\n"
    );
    let prints = results.first().map_or(100_000, |r| r.prints);
    let runs = results.first().map_or(0, |r| r.one_plus_one_us.len());
    let _ = writeln!(
        out,
        "| system | cold start / first execute s | 1+1 p50 ms | 1+1 p99 ms | {} prints s |",
        count_label(prints)
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let ms = |us: u64| us as f64 / 1000.0;
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.2} | {:.2} | {:.3} |",
            r.system,
            r.cold_start.as_secs_f64(),
            ms(percentile(&r.one_plus_one_us, 50.0)),
            ms(percentile(&r.one_plus_one_us, 99.0)),
            r.prints_time.as_secs_f64(),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- 1+1: {runs} runs of the same cell after the first; p50/p99 by nearest rank."
    );
    for r in results {
        let _ = writeln!(out, "- {}: {}", r.system, r.note);
    }
    if let Some(t) = results.iter().find(|r| r.system == "Tandem") {
        let (cold, p50, print_s) = EXEC_GOALS;
        let mark = |met: bool| if met { "met" } else { "not met" };
        let _ = writeln!(
            out,
            "- Goals for Tandem (issue 3): first execute ≤ {} ms ({}), 1+1 p50 ≤ {p50} ms ({}), \
             100k prints ≤ {print_s} s ({}).",
            cold * 1000.0,
            mark(t.cold_start.as_secs_f64() <= cold),
            mark(ms(percentile(&t.one_plus_one_us, 50.0)) <= p50),
            mark(t.prints == 100_000 && t.prints_time.as_secs_f64() <= print_s),
        );
    }
    out
}

/// `100000` → `100k`; other counts as they are.
fn count_label(count: u64) -> String {
    if count >= 1000 && count.is_multiple_of(1000) {
        format!("{}k", count / 1000)
    } else {
        count.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), 50);
        assert_eq!(percentile(&samples, 99.0), 99);
        assert_eq!(percentile(&samples, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn table_has_a_row_per_run_and_the_ratio() {
        let config = TypingConfig {
            clients: 3,
            rate: 10.0,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            drain: Duration::ZERO,
            typists: 3,
            presence: false,
        };
        let result = |cpu| TypingResult {
            sent: 30,
            delivered: 60,
            expected: 60,
            window: Duration::from_secs(1),
            latencies_us: vec![1000, 2000, 3000],
            cross_node_us: vec![],
            server_cpu_s: cpu,
            memory: Memory {
                rss_mib: 10.0,
                peak_mib: 12.0,
            },
            watcher_awareness_frames: 0,
        };
        let rows = [
            Row::typing("Tandem", &config, &result(0.01)),
            Row::typing("y-websocket@2 (Node)", &config, &result(0.06)),
        ];
        let md = markdown(&rows, "tandem-bench", "test machine");
        assert!(md.contains(
            "| Tandem | typing | 3 | 10 | 60 | 2.00 | 3.00 | 3.00 | 0.1667 | 10.0 (12.0) |"
        ));
        assert!(md.contains("6.0× less"));
        assert!(!md.contains("cross-node"));

        let mut cluster = result(0.02);
        cluster.cross_node_us = vec![4000, 5000];
        let rows = [Row::typing(
            "Tandem, 2 collab nodes on Redis",
            &config,
            &cluster,
        )];
        let md = markdown(&rows, "tandem-bench", "test machine");
        assert!(md.contains("| max ms | cross-node p99 ms | CPU"), "{md}");
        assert!(md.contains("| 3.00 | 5.00 | 0.3333 |"), "{md}");

        // Presence runs: their own label, the awareness frames, a ratio per size.
        let presence = TypingConfig {
            clients: 4,
            typists: 1,
            presence: true,
            ..config
        };
        let mut watched = result(0.01);
        watched.window = Duration::from_secs(30);
        watched.watcher_awareness_frames = 3 * 40;
        let rows = [
            Row::typing("Tandem", &presence, &watched),
            Row::typing("y-websocket@2 (Node)", &presence, &result(0.03)),
        ];
        let md = markdown(&rows, "tandem-bench", "test machine");
        assert!(md.contains("| Tandem | presence | 4 |"), "{md}");
        assert!(
            md.contains("awareness frames per watcher per 15 s renewal cycle: 20"),
            "{md}"
        );
        assert!(
            md.contains("presence with 4 clients: Tandem uses 3.0× less"),
            "{md}"
        );
    }

    #[test]
    fn exec_table_has_a_row_per_system_and_the_goals() {
        let result = |system: &str, cold_ms, p50_us| ExecResult {
            system: system.into(),
            cold_start: Duration::from_millis(cold_ms),
            one_plus_one_us: vec![p50_us, p50_us, 9900],
            prints: 100_000,
            prints_time: Duration::from_millis(400),
            note: "note".into(),
        };
        let rows = [
            result("Tandem", 120, 1500),
            result("ipykernel 7.4.0", 700, 9300),
        ];
        let md = exec_markdown(&rows, "tandem-bench --scenarios exec", "test machine");
        assert!(md.contains("| 100k prints s |"));
        assert!(md.contains("| Tandem | 0.120 | 1.50 | 9.90 | 0.400 |"));
        assert!(md.contains("| ipykernel 7.4.0 | 0.700 | 9.30 | 9.90 | 0.400 |"));
        assert!(md.contains("≤ 150 ms (met), 1+1 p50 ≤ 2 ms (met), 100k prints ≤ 0.5 s (met)"));
        assert_eq!(count_label(1234), "1234");
    }
}
