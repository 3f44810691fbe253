//! Every log line the process writes, captured for tests that check what reaches the log.
//! Only for a test binary of its own: the subscriber is process-wide, so the server's events
//! on every thread (the blocking pool's included) reach it, which a thread-local subscriber
//! beside other tests does not guarantee (tracing caches each callsite's interest globally).

use std::sync::{Arc, Mutex};

/// The captured log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Installs the process-wide subscriber at `level`, writing into the returned log.
    pub fn install(level: tracing::Level) -> Log {
        let log = Log::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer({
                let log = log.clone();
                move || log.clone()
            })
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
