//! Where metric lines go: stdout, or the sink given to [`set_sink`] (once per
//! process); in test builds, the `Capture` of the running scope first.

use std::io::Write;
use std::sync::OnceLock;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every line of this process to `sink` instead of stdout (e.g. nowhere, in
/// a test binary); only the first call takes effect. Returns whether it did.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

/// Writes one line: to the capture of the running scope (test builds), else to
/// the sink, else to stdout.
pub(super) fn write_line(line: &str) {
    #[cfg(any(test, feature = "testing"))]
    if super::capture::take(line) {
        return;
    }
    match SINK.get() {
        Some(sink) => sink(line),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}
