//! The worker's event pipe, and the coalescing of stream output written into it.
//!
//! Every event leaves the worker through one [`Sink`], under one lock, so events keep the
//! order in which the cell produced them. Text written to `sys.stdout`/`sys.stderr` is not
//! sent per `write` call: a loop of 100 000 `print`s would otherwise cost 200 000 JSON
//! events. Instead it collects in `pending` and leaves at most once per
//! [`STREAM_INTERVAL`]: at once when the last flush is older than that and the text ends a
//! line (so a lone `print` shows up without delay, in one piece although `print` writes
//! the text and the newline separately), otherwise from the flusher thread when the
//! interval is over, or [`LINGER`] after a partial line was written (so
//! `print("a"); time.sleep(10)` still shows "a" while the cell sleeps). Any other
//! event, and the end of a cell, first flushes what is pending, so output never overtakes
//! the text printed before it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tandem_protocol::kernel::{Event, StreamName};

/// How often stream text may leave the worker while a cell prints. Frontends (and the
/// document every collaborator watches) redraw at about this rate anyway; faster only
/// multiplies events.
pub const STREAM_INTERVAL: Duration = Duration::from_millis(50);

/// How long a partial line may wait for the rest of its line when nothing else holds it
/// back: long enough for `print`'s second `write` call, short enough to go unnoticed.
pub const LINGER: Duration = Duration::from_millis(2);

/// Pending text beyond this is flushed at once, interval or not, so one runaway loop
/// cannot hold an unbounded buffer in the kernel before the manager sees any of it.
const MAX_PENDING_BYTES: usize = 1 << 20;

/// The worker's end of the event pipe.
pub struct Sink {
    state: Mutex<State>,
    /// Wakes the flusher when text becomes pending.
    wake: Condvar,
}

struct State {
    out: BufWriter<File>,
    /// Stream text not yet sent, in write order; consecutive writes to one stream merge.
    pending: Vec<(StreamName, String)>,
    pending_bytes: usize,
    /// When `pending` last went from empty to not empty.
    pending_since: Instant,
    last_flush: Instant,
}

impl Sink {
    /// Wraps the event pipe and starts the thread that flushes stream text on time.
    pub fn start(out: File) -> io::Result<Arc<Sink>> {
        let sink = Arc::new(Sink {
            state: Mutex::new(State {
                out: BufWriter::new(out),
                pending: Vec::new(),
                pending_bytes: 0,
                pending_since: Instant::now(),
                last_flush: Instant::now() - STREAM_INTERVAL,
            }),
            wake: Condvar::new(),
        });
        let flusher = Arc::clone(&sink);
        thread::Builder::new()
            .name("stream-flusher".into())
            .spawn(move || flusher.run_flusher())?;
        Ok(sink)
    }

    /// Queues text written to a stream.
    pub fn write_stream(&self, name: StreamName, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        let was_empty = state.pending.is_empty();
        if was_empty {
            state.pending_since = Instant::now();
        }
        match state.pending.last_mut() {
            Some((last, buffer)) if *last == name => buffer.push_str(text),
            _ => state.pending.push((name, text.to_owned())),
        }
        state.pending_bytes += text.len();
        let line_done = text.ends_with('\n');
        if (line_done && state.last_flush.elapsed() >= STREAM_INTERVAL)
            || state.pending_bytes >= MAX_PENDING_BYTES
        {
            state.flush_streams()
        } else {
            if was_empty {
                self.wake.notify_one();
            }
            Ok(())
        }
    }

    /// Sends an event, after any stream text written before it.
    pub fn emit(&self, event: &Event) -> io::Result<()> {
        let line = serde_json::to_string(event)?;
        self.emit_line(&line)
    }

    /// Sends an event already serialized as one line of JSON (by the Python glue).
    pub fn emit_line(&self, line: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.flush_streams()?;
        state.out.write_all(line.as_bytes())?;
        state.out.write_all(b"\n")?;
        state.out.flush()
    }

    /// Sends all pending stream text now (end of a cell, before exit).
    pub fn flush(&self) -> io::Result<()> {
        self.lock().flush_streams()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it
        // rather than losing every later event of the kernel.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run_flusher(&self) {
        super::block_interrupts();
        let mut state = self.lock();
        loop {
            if state.pending.is_empty() {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let due = (state.last_flush + STREAM_INTERVAL).max(state.pending_since + LINGER);
            let now = Instant::now();
            if now < due {
                state = self
                    .wake
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            if state.flush_streams().is_err() {
                // The manager is gone; the request reader sees the same and ends the process.
                return;
            }
        }
    }
}

impl State {
    fn flush_streams(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        for (name, text) in self.pending.drain(..) {
            let event = Event::Stream { name, text };
            serde_json::to_writer(&mut self.out, &event)?;
            self.out.write_all(b"\n")?;
        }
        self.pending_bytes = 0;
        self.last_flush = Instant::now();
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn pipe_sink() -> (Arc<Sink>, BufReader<File>) {
        let (read, write) = nix::unistd::pipe().unwrap();
        (
            Sink::start(File::from(write)).unwrap(),
            BufReader::new(File::from(read)),
        )
    }

    fn next_event(reader: &mut BufReader<File>) -> Event {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn many_writes_coalesce_and_keep_order_with_other_events() {
        let (sink, mut reader) = pipe_sink();
        for i in 0..1000 {
            sink.write_stream(StreamName::Stdout, &format!("{i}\n"))
                .unwrap();
        }
        sink.write_stream(StreamName::Stderr, "warn\n").unwrap();
        sink.emit(&Event::ClearOutput { wait: false }).unwrap();

        let mut stdout = String::new();
        let mut events = 0;
        loop {
            match next_event(&mut reader) {
                Event::Stream {
                    name: StreamName::Stdout,
                    text,
                } => {
                    stdout.push_str(&text);
                    events += 1;
                }
                Event::Stream {
                    name: StreamName::Stderr,
                    text,
                } => assert_eq!(text, "warn\n"),
                Event::ClearOutput { .. } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected: String = (0..1000).map(|i| format!("{i}\n")).collect();
        assert_eq!(stdout, expected);
        assert!(events <= 3, "{events} stdout events for one burst");
    }

    #[test]
    fn a_lone_print_arrives_in_one_piece() {
        let (sink, mut reader) = pipe_sink();
        sink.write_stream(StreamName::Stdout, "hello").unwrap();
        sink.write_stream(StreamName::Stdout, "\n").unwrap();
        let Event::Stream { text, .. } = next_event(&mut reader) else {
            panic!()
        };
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn text_pending_while_the_cell_is_busy_leaves_on_time() {
        let (sink, mut reader) = pipe_sink();
        sink.write_stream(StreamName::Stdout, "first").unwrap();
        sink.write_stream(StreamName::Stdout, "second").unwrap();
        // Nobody flushes explicitly: the flusher thread must send "second" by itself.
        let mut seen = String::new();
        while seen != "firstsecond" {
            let Event::Stream { text, .. } = next_event(&mut reader) else {
                panic!()
            };
            seen.push_str(&text);
        }
    }
}
