//! A hosted agent's stdout and stderr, kept per agent in a size-capped ring on disk, read a page
//! at a time and followed live.
//!
//! The ring is two segment files of JSON lines, `current.log` and `previous.log`. When `current`
//! would grow past half the cap it replaces `previous` (one atomic rename) and a new `current`
//! starts: the oldest half rolls off and the disk holds at most the cap (more only when one record
//! is larger than half of it: a 16 KiB line that JSON escaping doubles). Sequence numbers count up
//! across rotations and reopenings (a restart never reuses one), so a reader can continue from
//! the last number it saw and tell from `first_kept` that records rolled off before it read them.
//!
//! What the agent prints is untrusted: it is split into lines of at most [`MAX_LINE_BYTES`],
//! decoded as lossy UTF-8, stripped of the secrets Hive gave the agent, and its control
//! characters are written as visible escapes, so nothing it prints drives the terminal or page
//! that shows it.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use time::{OffsetDateTime, UtcOffset};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

/// Longest line kept. A longer line, or a partial line held this long, is cut into pieces of at
/// most this many bytes: an agent that never prints a newline cannot grow Hive's memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Smallest cap accepted (smaller ones are raised), so that each half holds a 16 KiB line.
pub const MIN_CAP_BYTES: u64 = 64 * 1024;
/// Most records one [`LogRing::read`] or [`LogRing::tail`] returns.
pub const MAX_PAGE: usize = 1000;
/// Lines a live subscriber may fall behind before it is told it lagged.
const LIVE_BUFFER: usize = 1024;
const CURRENT: &str = "current.log";
const PREVIOUS: &str = "previous.log";
const REDACTED: &str = "[redacted]";
/// Ends a line whose escapes or redactions grew it past [`MAX_LINE_BYTES`] and that was cut.
const CUT: &str = "…";

/// Which of the agent's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One line the agent printed, as stored and as sent live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Counts up from 1 for the life of the ring; never reused.
    pub seq: u64,
    /// When the chunk that completed the line was read; kept in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub stream: LogStream,
    /// Lossy UTF-8, secrets redacted, control characters escaped (see [`LogRing::append`]).
    pub text: String,
}

/// Records oldest first, from [`LogRing::read`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The last seq returned when more records follow it (pass it as `after` for the next
    /// page); `None` when the reader is caught up.
    pub next: Option<u64>,
    /// The oldest seq still on disk; above the reader's `after + 1`, records rolled off unread.
    pub first_kept: Option<u64>,
}

/// One agent's log ring. `Send + Sync`: share it in an `Arc` between the pumps of its stdout
/// and stderr and its readers. Its methods do blocking file I/O, so async callers run them
/// through `spawn_blocking`, as [`pump`] does.
///
/// Live follow: [`subscribe`](Self::subscribe) receives every line as it is stored. A subscriber
/// more than 1024 lines behind gets broadcast's `RecvError::Lagged` and loses those lines from
/// the channel; it then re-reads them from disk with [`read`](Self::read) after the last seq it
/// saw. Subscribe before the first read (so no line falls between the two) and drop live lines
/// whose seq was already read.
pub struct LogRing {
    dir: PathBuf,
    /// `current` is rotated before it grows past this: half the cap.
    half: u64,
    /// Longest first, none empty.
    secrets: Vec<Zeroizing<String>>,
    live: broadcast::Sender<LogLine>,
    state: Mutex<State>,
}

struct State {
    writer: Writer,
    /// Each stream's partial line, waiting for its newline.
    held: [Vec<u8>; 2],
}

struct Writer {
    /// `current.log`, opened for appending.
    file: File,
    len: u64,
    next_seq: u64,
}

impl LogRing {
    /// Opens the ring in `dir` (created 0700 if missing), continuing after what is on disk.
    /// A torn last line (a crash mid-write) is cut off, so the next record starts a line. One
    /// `LogRing` per directory at a time: two would hand out the same numbers.
    pub fn open(dir: &Path, cap_bytes: u64) -> io::Result<Self> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let file = open_segment(&dir.join(CURRENT))?;
        let mut current = read_segment(&dir.join(CURRENT))?;
        let whole = current
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if whole < current.len() {
            file.set_len(whole as u64)?;
            current.truncate(whole);
        }
        // Both segments: a crash between rotation's rename and the new `current` leaves only
        // `previous`.
        let previous = read_segment(&dir.join(PREVIOUS))?;
        let last = parse(&previous)
            .chain(parse(&current))
            .map(|line| line.seq)
            .max();
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Ok(Self {
            dir: dir.to_path_buf(),
            half: cap_bytes.max(MIN_CAP_BYTES) / 2,
            secrets: Vec::new(),
            live,
            state: Mutex::new(State {
                writer: Writer {
                    file,
                    len: whole as u64,
                    next_seq: last.unwrap_or(0).saturating_add(1),
                },
                held: [Vec::new(), Vec::new()],
            }),
        })
    }

    /// Secrets to replace by `[redacted]` in every line before it is stored or sent live (the
    /// agent may print its own; Hive never keeps them). The longest goes first, so a secret that
    /// contains another is removed whole. Lines are redacted once complete, so a secret split
    /// across chunks is still found; it is missed only where it straddles the cut of a line
    /// longer than [`MAX_LINE_BYTES`].
    #[must_use]
    pub fn with_redactions(mut self, secrets: Vec<Zeroizing<String>>) -> Self {
        self.secrets = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    /// Stores what the agent printed on `stream`, in whatever chunks it came. Each complete
    /// line is stored (a trailing `\r` dropped); the rest is held per stream until its newline,
    /// or cut into a line of its own once it passes [`MAX_LINE_BYTES`] (before a UTF-8
    /// character, not through it). Text is lossy UTF-8 with secrets redacted; control
    /// characters other than tab are written as visible escapes (`\x1b`, `\x07`; C1 controls
    /// as `\u{9b}`), so a terminal shows an agent's ANSI sequence instead of obeying it. A
    /// line that cannot be written is lost and the error returned.
    pub fn append(&self, stream: LogStream, chunk: &[u8], at: OffsetDateTime) -> io::Result<()> {
        let mut state = self.lock();
        let State { writer, held } = &mut *state;
        let held = &mut held[stream as usize];
        for (i, piece) in chunk.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                // A newline ended the held line.
                if held.last() == Some(&b'\r') {
                    held.pop();
                }
                let line = std::mem::take(held);
                self.store(writer, stream, &line, at)?;
            }
            for part in piece.chunks(MAX_LINE_BYTES) {
                held.extend_from_slice(part);
                while held.len() > MAX_LINE_BYTES {
                    let line: Vec<u8> = held.drain(..cut_point(held)).collect();
                    self.store(writer, stream, &line, at)?;
                }
            }
        }
        Ok(())
    }

    /// Stores the partial lines still held: the agent ended without a last newline.
    pub fn flush_partial(&self, at: OffsetDateTime) -> io::Result<()> {
        let stdout = self.flush_stream(LogStream::Stdout, at);
        stdout.and(self.flush_stream(LogStream::Stderr, at))
    }

    /// Records with a seq above `after` (from the oldest kept when `None`), oldest first, at
    /// most `limit` (taken as 1..=[`MAX_PAGE`]).
    pub fn read(&self, after: Option<u64>, limit: usize) -> io::Result<LogPage> {
        let all = self.load()?;
        let first_kept = all.first().map(|line| line.seq);
        let mut rest = all
            .into_iter()
            .filter(|line| after.is_none_or(|after| line.seq > after));
        let lines: Vec<LogLine> = rest.by_ref().take(limit.clamp(1, MAX_PAGE)).collect();
        let next = rest.next().and(lines.last().map(|line| line.seq));
        Ok(LogPage {
            lines,
            next,
            first_kept,
        })
    }

    /// The last `n` records (at most [`MAX_PAGE`]), oldest first: for a first look or an error
    /// message.
    pub fn tail(&self, n: usize) -> io::Result<Vec<LogLine>> {
        let mut all = self.load()?;
        let keep = n.min(MAX_PAGE).min(all.len());
        Ok(all.split_off(all.len() - keep))
    }

    /// Every line stored from now on (see the type's docs for lagging).
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.live.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush_stream(&self, stream: LogStream, at: OffsetDateTime) -> io::Result<()> {
        let mut state = self.lock();
        let State { writer, held } = &mut *state;
        let line = std::mem::take(&mut held[stream as usize]);
        if line.is_empty() {
            return Ok(());
        }
        self.store(writer, stream, &line, at)
    }

    /// Both segments' records, read under the lock so no rotation falls between the two.
    fn load(&self) -> io::Result<Vec<LogLine>> {
        let (previous, current) = {
            let _state = self.lock();
            (
                read_segment(&self.dir.join(PREVIOUS))?,
                read_segment(&self.dir.join(CURRENT))?,
            )
        };
        Ok(parse(&previous).chain(parse(&current)).collect())
    }

    fn store(
        &self,
        writer: &mut Writer,
        stream: LogStream,
        raw: &[u8],
        at: OffsetDateTime,
    ) -> io::Result<()> {
        let line = LogLine {
            seq: writer.next_seq,
            at: at.checked_to_offset(UtcOffset::UTC).unwrap_or(at),
            stream,
            text: self.clean(raw),
        };
        let mut record = serde_json::to_vec(&line)?;
        record.push(b'\n');
        if writer.len > 0 && writer.len + record.len() as u64 > self.half {
            // NotFound: an earlier rotation renamed `current` but could not open the new one.
            or_absent(fs::rename(self.dir.join(CURRENT), self.dir.join(PREVIOUS)))?;
            writer.file = open_segment(&self.dir.join(CURRENT))?;
            writer.len = 0;
        }
        if let Err(error) = writer.file.write_all(&record) {
            // Drop what part got written, so the next record starts a line of its own.
            let _ = writer.file.set_len(writer.len);
            return Err(error);
        }
        writer.len += record.len() as u64;
        writer.next_seq += 1;
        // An error only says nobody is following.
        let _ = self.live.send(line);
        Ok(())
    }

    fn clean(&self, raw: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(raw).into_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        let mut shown = String::with_capacity(text.len());
        for c in text.chars() {
            // `is_control`: C0, DEL and C1 (U+0080..=U+009F, where a terminal may read CSI).
            if c == '\t' || !c.is_control() {
                shown.push(c);
            } else if c.is_ascii() {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            } else {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
        }
        if shown.len() > MAX_LINE_BYTES {
            shown.truncate(shown.floor_char_boundary(MAX_LINE_BYTES - CUT.len()));
            shown.push_str(CUT);
        }
        shown
    }
}

/// Reads one of the agent's outputs to its end into the ring, each chunk stored through
/// `spawn_blocking`, then stores its last partial line. It keeps reading after a failed write
/// (an agent whose output is not read blocks) and returns the first error at the end.
pub async fn pump(
    ring: Arc<LogRing>,
    stream: LogStream,
    mut reader: impl AsyncRead + Unpin,
    clock: impl Fn() -> OffsetDateTime,
) -> io::Result<()> {
    let mut buf = vec![0; MAX_LINE_BYTES];
    let mut first_error = None;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => {
                first_error.get_or_insert(error);
                break;
            }
        };
        let (ring, chunk, at) = (Arc::clone(&ring), buf[..n].to_vec(), clock());
        if let Err(error) = blocking(move || ring.append(stream, &chunk, at)).await {
            first_error.get_or_insert(error);
        }
    }
    let at = clock();
    if let Err(error) = blocking(move || ring.flush_stream(stream, at)).await {
        first_error.get_or_insert(error);
    }
    first_error.map_or(Ok(()), Err)
}

async fn blocking(task: impl FnOnce() -> io::Result<()> + Send + 'static) -> io::Result<()> {
    tokio::task::spawn_blocking(task)
        .await
        .map_err(io::Error::other)?
}

/// Where to cut an over-long line: at [`MAX_LINE_BYTES`], or up to 3 bytes before it so that a
/// UTF-8 character moves whole to the next piece.
fn cut_point(bytes: &[u8]) -> usize {
    (MAX_LINE_BYTES - 3..=MAX_LINE_BYTES)
        .rev()
        .find(|&i| bytes.get(i).is_some_and(|b| b & 0xC0 != 0x80))
        .unwrap_or(MAX_LINE_BYTES)
}

/// A segment's records; a line that does not parse (a torn write) is skipped.
fn parse(bytes: &[u8]) -> impl Iterator<Item = LogLine> + '_ {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
}

fn read_segment(path: &Path) -> io::Result<Vec<u8>> {
    or_absent(fs::read(path))
}

/// A file that is not there counts as empty.
fn or_absent<T: Default>(result: io::Result<T>) -> io::Result<T> {
    match result {
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(T::default()),
        other => other,
    }
}

fn open_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::LogStream::{Stderr, Stdout};
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::sync::broadcast::error::TryRecvError;

    const AT: OffsetDateTime = time::macros::datetime!(2025-01-02 03:04:05 UTC);

    fn open(dir: &Path) -> LogRing {
        LogRing::open(dir, 0).unwrap()
    }

    fn put(ring: &LogRing, stream: LogStream, bytes: impl AsRef<[u8]>) {
        ring.append(stream, bytes.as_ref(), AT).unwrap();
    }

    fn texts(lines: &[LogLine]) -> Vec<(LogStream, &str)> {
        lines.iter().map(|l| (l.stream, l.text.as_str())).collect()
    }

    fn seqs(lines: &[LogLine]) -> Vec<u64> {
        lines.iter().map(|l| l.seq).collect()
    }

    fn all(ring: &LogRing) -> Vec<LogLine> {
        ring.read(None, MAX_PAGE).unwrap().lines
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn chunks_are_joined_into_lines_per_stream() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, "hel");
        put(&ring, Stderr, "wor");
        put(&ring, Stdout, "lo\n\nnext");
        put(&ring, Stderr, "ld\r\n");
        let want = [(Stdout, "hello"), (Stdout, ""), (Stderr, "world")];
        assert_eq!(texts(&all(&ring)), want);
        put(&ring, Stderr, "err tail");
        ring.flush_partial(AT).unwrap();
        let page = ring.read(Some(3), 10).unwrap().lines;
        assert_eq!(seqs(&page), [4, 5]);
        assert_eq!(texts(&page), [(Stdout, "next"), (Stderr, "err tail")]);
    }

    #[test]
    fn long_lines_are_cut_at_max_line_bytes_between_characters() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, [b'a'; MAX_LINE_BYTES + 10]);
        let a = "a".repeat(MAX_LINE_BYTES);
        assert_eq!(texts(&all(&ring)), [(Stdout, a.as_str())]);
        put(&ring, Stdout, "\n");
        assert_eq!(ring.tail(1).unwrap()[0].text, "a".repeat(10));
        // A two-byte character across the cut moves whole to the next piece.
        let b = "b".repeat(MAX_LINE_BYTES - 1);
        put(&ring, Stdout, format!("{b}é\n"));
        let tail = ring.tail(2).unwrap();
        assert_eq!(texts(&tail), [(Stdout, b.as_str()), (Stdout, "é")]);
    }

    #[test]
    fn ring_rotates_under_the_cap_and_keeps_counting() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent").join("logs");
        let ring = LogRing::open(&dir, 1).unwrap();
        let on_disk = || -> u64 {
            let size = |name| fs::metadata(dir.join(name)).map_or(0, |m| m.len());
            size(CURRENT) + size(PREVIOUS)
        };
        for i in 1..=2000 {
            put(&ring, Stdout, format!("line {i:04} {}\n", "x".repeat(80)));
            assert!(on_disk() <= MIN_CAP_BYTES, "over the cap at line {i}");
        }
        let page = ring.read(None, 5).unwrap();
        let first = page.first_kept.unwrap();
        assert!(first > 1000, "the oldest records rolled off: {first}");
        assert_eq!(page.lines[0].seq, first);
        // A reader that stopped at 10 sees from `first_kept` that it missed records.
        let page = ring.read(Some(10), 5).unwrap();
        assert_eq!((page.lines[0].seq, page.next), (first, Some(first + 4)));
        let tail = ring.tail(2).unwrap();
        assert_eq!(seqs(&tail), [1999, 2000]);
        assert!(tail[1].text.starts_with("line 2000 "));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CURRENT)), 0o600);
        assert_eq!(mode(&dir.join(PREVIOUS)), 0o600);
    }

    #[test]
    fn read_pages_with_after_limit_and_next() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        assert_eq!(ring.read(None, 10).unwrap().first_kept, None);
        (1..=25).for_each(|i| put(&ring, Stderr, format!("{i}\n")));
        let page = ring.read(None, 10).unwrap();
        assert_eq!(seqs(&page.lines), (1..=10).collect::<Vec<_>>());
        assert_eq!((page.next, page.first_kept), (Some(10), Some(1)));
        let page = ring.read(page.next, 10).unwrap();
        assert_eq!(seqs(&page.lines), (11..=20).collect::<Vec<_>>());
        assert_eq!(page.next, Some(20));
        let page = ring.read(page.next, 10).unwrap();
        assert_eq!((seqs(&page.lines), page.next), ((21..=25).collect(), None));
        let page = ring.read(Some(25), 10).unwrap();
        assert_eq!((page.lines.len(), page.next), (0, None));
        assert_eq!(seqs(&ring.read(Some(3), 0).unwrap().lines), [4]);
        let tail = ring.tail(3).unwrap();
        assert_eq!(
            texts(&tail),
            [(Stderr, "23"), (Stderr, "24"), (Stderr, "25")]
        );
        assert!(ring.tail(0).unwrap().is_empty());
    }

    #[test]
    fn reopening_continues_the_sequence_and_skips_a_torn_line() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, "one\ntwo\nthree\n");
        let path = tmp.path().join(CURRENT);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":4,"at":"2025-01-"#).unwrap();
        assert_eq!(all(&ring).len(), 3);
        drop(ring);
        let ring = open(tmp.path());
        put(&ring, Stdout, "after\n");
        let lines = all(&ring);
        assert_eq!(
            (seqs(&lines), lines[3].text.as_str()),
            (vec![1, 2, 3, 4], "after")
        );
        drop(ring);
        // A crash between rotation's rename and the new `current`: count on from `previous`.
        fs::rename(tmp.path().join(CURRENT), tmp.path().join(PREVIOUS)).unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, "again\n");
        assert_eq!(ring.tail(1).unwrap()[0].seq, 5);
    }

    #[test]
    fn secrets_are_redacted_longest_first_before_storing_or_sending() {
        let tmp = tempfile::tempdir().unwrap();
        let secrets = ["tok", "tok-123456", ""].map(|s| Zeroizing::new(s.to_owned()));
        let ring = open(tmp.path()).with_redactions(secrets.into());
        let mut live = ring.subscribe();
        put(&ring, Stdout, "key=tok-12");
        put(&ring, Stdout, "3456 and tok end\n");
        let want = "key=[redacted] and [redacted] end";
        assert_eq!(texts(&all(&ring)), [(Stdout, want)]);
        assert_eq!(live.try_recv().unwrap().text, want);
        let disk = fs::read_to_string(tmp.path().join(CURRENT)).unwrap();
        assert!(!disk.contains("tok") && !disk.contains("123456"), "{disk}");
    }

    #[test]
    fn control_characters_are_escaped_and_binary_is_lossy() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, "\x1b[31mred\x1b[0m\tok\x07\u{9b}2J\n");
        put(&ring, Stderr, b"\xff\xfe\x00\n");
        let want = [
            (Stdout, r"\x1b[31mred\x1b[0m	ok\x07\u{9b}2J"),
            (Stderr, "\u{fffd}\u{fffd}\\x00"),
        ];
        assert_eq!(texts(&all(&ring)), want);
    }

    #[test]
    fn subscribers_receive_stored_lines_and_are_told_when_they_lag() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        let mut live = ring.subscribe();
        put(&ring, Stderr, "one\ntwo\n");
        let got = [live.try_recv().unwrap(), live.try_recv().unwrap()];
        assert_eq!(got.to_vec(), all(&ring));
        assert_eq!(texts(&got), [(Stderr, "one"), (Stderr, "two")]);
        put(&ring, Stdout, "x\n".repeat(LIVE_BUFFER + 5));
        assert!(matches!(live.try_recv(), Err(TryRecvError::Lagged(5))));
    }

    #[tokio::test]
    async fn pump_reads_to_the_end_and_stores_the_last_partial_line() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<LogRing>();
        let tmp = tempfile::tempdir().unwrap();
        let ring = Arc::new(open(tmp.path()));
        let reader: &[u8] = b"first\nsecond";
        pump(Arc::clone(&ring), Stderr, reader, || AT)
            .await
            .unwrap();
        assert_eq!(texts(&all(&ring)), [(Stderr, "first"), (Stderr, "second")]);
    }

    #[test]
    fn records_are_json_lines_in_the_documented_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = open(tmp.path());
        put(&ring, Stdout, "hi\n");
        let disk = fs::read_to_string(tmp.path().join(CURRENT)).unwrap();
        let want = r#"{"seq":1,"at":"2025-01-02T03:04:05Z","stream":"stdout","text":"hi"}"#;
        assert_eq!(disk, format!("{want}\n"));
        let page = serde_json::to_value(ring.read(None, 1).unwrap()).unwrap();
        assert_eq!(page["firstKept"], 1);
    }
}
