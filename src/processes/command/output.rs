//! What a command writes: PROGRESS lines, stdout in bounded memory, the stderr tail.

/// The longest line (newline included) that can be a PROGRESS line.
pub(super) const PROGRESS_LINE_MAX: usize = 4096;
/// The stderr tail shown to the client: lines and bytes.
pub(super) const TAIL_LINES: usize = 20;
pub(super) const TAIL_BYTES: usize = 2048;

/// Replaces characters XML 1.0 cannot carry (control characters other than tab and newlines).
pub fn xml_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// `PROGRESS <0-100> <message>` lines on stdout.
pub fn parse_progress(line: &[u8]) -> Option<(u32, String)> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    let rest = line.strip_prefix("PROGRESS ")?;
    let (pct, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let pct = pct.parse::<u32>().ok().filter(|p| *p <= 100)?;
    Some((pct, xml_safe(msg.trim())))
}

/// The last lines of stderr for the client: at most `TAIL_LINES` lines and `TAIL_BYTES` bytes.
pub fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let mut tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.len() > TAIL_BYTES {
        let mut cut = tail.len() - TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    xml_safe(&tail)
}

/// A size for messages: `256 MB`, `64 KB` or `1000 bytes`.
pub(super) fn size_text(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Splits a command's stdout, fed in chunks, into PROGRESS lines and the rest, in bounded
/// memory: the current line is buffered only up to `PROGRESS_LINE_MAX` bytes (a longer line is
/// not a progress line), and the rest is kept (when an output is read from stdout) up to
/// `limit` bytes; past that the sink overflows and drops what it kept.
pub struct StdoutSink {
    keep: bool,
    limit: usize,
    kept: Vec<u8>,
    /// The start of the current line while it may still be a progress line.
    line: Vec<u8>,
    /// The current line is longer than `PROGRESS_LINE_MAX`.
    long: bool,
    overflow: bool,
}

impl StdoutSink {
    pub fn new(keep: bool, limit: usize) -> Self {
        StdoutSink {
            keep,
            limit,
            kept: Vec::new(),
            line: Vec::with_capacity(PROGRESS_LINE_MAX),
            long: false,
            overflow: false,
        }
    }

    /// Whether more than `limit` bytes were to be kept.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The bytes kept so far (stdout without the PROGRESS lines).
    pub fn into_kept(self) -> Vec<u8> {
        self.kept
    }

    /// The memory the sink holds (its two buffers' capacities).
    pub fn capacity(&self) -> usize {
        self.kept.capacity() + self.line.capacity()
    }

    fn rest(&mut self, data: &[u8]) {
        if !self.keep || self.overflow || data.is_empty() {
            return;
        }
        let need = self.kept.len() + data.len();
        if need > self.limit {
            self.overflow = true;
            self.kept = Vec::new();
            return;
        }
        if need > self.kept.capacity() {
            // grow by doubling, but never past the limit
            let cap = need.max(self.kept.capacity() * 2).min(self.limit);
            self.kept.reserve_exact(cap - self.kept.len());
        }
        self.kept.extend_from_slice(data);
    }

    /// The end of a line (or of stdout): a progress line is reported, anything else kept.
    fn end_line(&mut self, progress: &mut dyn FnMut(u32, String)) {
        if !self.long {
            if let Some((pct, msg)) = parse_progress(&self.line) {
                progress(pct, msg);
            } else {
                let line = std::mem::take(&mut self.line);
                self.rest(&line);
                self.line = line;
            }
        }
        self.line.clear();
        self.long = false;
    }

    /// Takes the next chunk of stdout.
    pub fn feed(&mut self, mut data: &[u8], progress: &mut dyn FnMut(u32, String)) {
        while !data.is_empty() {
            let (seg, eol) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[seg.len()..];
            if self.long {
                self.rest(seg);
            } else if self.line.len() + seg.len() <= PROGRESS_LINE_MAX {
                self.line.extend_from_slice(seg);
            } else {
                // too long for a progress line: what was buffered and this go to the rest
                self.long = true;
                let line = std::mem::take(&mut self.line);
                self.rest(&line);
                self.line = line;
                self.line.clear();
                self.rest(seg);
            }
            if eol {
                self.end_line(progress);
            }
        }
    }

    /// The end of stdout (a last line without a newline).
    pub fn finish(&mut self, progress: &mut dyn FnMut(u32, String)) {
        if !self.line.is_empty() {
            self.end_line(progress);
        }
    }
}
