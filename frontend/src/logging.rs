//! `tracing` to the browser console: one console call per event, at the event's level.

use std::io;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Installs the console subscriber: debug and above for Albedo's crates, info for the rest.
/// Safe to call twice (the second call does nothing).
pub fn init() {
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("albedo_frontend", LevelFilter::DEBUG)
        .with_target("albedo_render", LevelFilter::DEBUG);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(MakeConsoleWriter);
    // Fails only when a subscriber is already set, which is fine.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// Makes one [`ConsoleWriter`] per event.
#[derive(Debug, Clone, Copy)]
struct MakeConsoleWriter;

impl<'a> MakeWriter<'a> for MakeConsoleWriter {
    type Writer = ConsoleWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleWriter::new(Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        ConsoleWriter::new(*meta.level())
    }
}

/// Buffers one formatted event and hands it to `console.*` when dropped.
#[derive(Debug)]
struct ConsoleWriter {
    level: Level,
    buf: Vec<u8>,
}

impl ConsoleWriter {
    fn new(level: Level) -> Self {
        ConsoleWriter {
            level,
            buf: Vec::new(),
        }
    }
}

impl io::Write for ConsoleWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let line = wasm_bindgen::JsValue::from_str(text.trim_end());
        match self.level {
            Level::ERROR => web_sys::console::error_1(&line),
            Level::WARN => web_sys::console::warn_1(&line),
            Level::INFO => web_sys::console::info_1(&line),
            _ => web_sys::console::debug_1(&line),
        }
    }
}
