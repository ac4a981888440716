//! Server-Sent Events read from a byte stream that comes in chunks of any size.
//!
//! What it is: the live view reads its event stream with `fetch` and takes the bytes at hand
//! a few dozen times a second, however many messages the server sent in between (an
//! `EventSource` costs the page one task per message: over a thousand a second for a fast
//! experiment). [`Parser`] holds the bytes not yet read and gives the complete messages one
//! at a time, so that the caller can stop when its time is up and go on later.
//!
//! The format is the event-stream of the HTML standard as the server writes it: lines end in
//! `\n` or `\r\n`; `event:` names the message, `data:` lines make its data (joined by `\n`);
//! a blank line ends it; lines starting with `:` (keep-alives) and other fields (`id:`,
//! `retry:`) are skipped: the live view resumes after the last event it applied, which it
//! knows from the events themselves.
//!
//! What it is not: no I/O, no reconnection ([`crate::liveview`] does both).

/// One message of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `event:` name (`message` when there is none).
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// Bytes of the stream not yet made into messages, and the message being read.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Start of the first line not yet read, in `buf`.
    pos: usize,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the bytes at hand hold one.
    pub fn next_message(&mut self) -> Option<Message> {
        loop {
            let rest = &self.buf[self.pos..];
            let end = rest.iter().position(|b| *b == b'\n')?;
            let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            self.pos += end + 1;
            if line.is_empty() {
                let event = self.event.take();
                if let Some(data) = self.data.take() {
                    return Some(Message {
                        event: event.unwrap_or_else(|| "message".to_string()),
                        data,
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser) -> Vec<(String, String)> {
        std::iter::from_fn(|| p.next_message())
            .map(|m| (m.event, m.data))
            .collect()
    }

    #[test]
    fn messages_come_whole_however_the_bytes_are_cut() {
        let stream = b": keep-alive\n\nevent: batch\nid: 3\ndata: [1,2,3]\n\n\
                       data: a\r\ndata: b\r\n\r\nevent: x\nretry: 5\n\n";
        let want = vec![
            ("batch".to_string(), "[1,2,3]".to_string()),
            ("message".to_string(), "a\nb".to_string()),
        ];
        let mut whole = Parser::default();
        whole.push(stream);
        assert_eq!(all(&mut whole), want);
        // Byte by byte: the same messages, each as soon as its blank line is in.
        let mut p = Parser::default();
        let mut got = Vec::new();
        for b in stream.iter() {
            p.push(&[*b]);
            got.extend(all(&mut p));
        }
        assert_eq!(got, want);
        // A message cut short waits for the rest.
        let mut p = Parser::default();
        p.push(b"event: batch\ndata: [1");
        assert_eq!(p.next_message(), None);
        p.push(b"]\n\n");
        assert_eq!(all(&mut p), vec![("batch".into(), "[1]".into())]);
    }
}
