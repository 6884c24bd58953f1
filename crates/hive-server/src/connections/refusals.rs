//! HTTP/1 requests that cannot be parsed never reach the router: hyper answers them itself
//! (400 bad syntax, 431 head too large) with an empty body. This wrapper of
//! the connection's socket recognises exactly those answers as they are written and gives
//! them the API's error shape, so a client sees one error format whatever refused it.

use hive_proto::{ErrorBody, ErrorCode, ErrorDetail};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct ShapedRefusals<IO> {
    inner: IO,
    /// A rewritten answer still being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> ShapedRefusals<IO> {
    pub fn new(inner: IO) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<IO: AsyncWrite + Unpin> ShapedRefusals<IO> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` as written when it is one of hyper's own refusals, queueing its shaped form.
    fn intercept(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let shaped = shape(buf)?;
        self.pending = Some((shaped, 0));
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ShapedRefusals<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ShapedRefusals<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(done) = self.intercept(cx, buf) {
            return done;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // Only a write that starts like a refusal is gathered to be looked at.
        if bufs
            .iter()
            .find(|buf| !buf.is_empty())
            .is_some_and(|first| looks_like_refusal(first))
        {
            let joined: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            if let Some(done) = self.intercept(cx, &joined) {
                return done;
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper also has a 414 of its own, for a target over 65,534 bytes, but a head that long is
/// over `MAX_HEAD_BYTES` and refused with 431 first; the API's 414 comes from the pipeline.
const REFUSALS: [(&[u8], ErrorCode); 2] = [
    (b"HTTP/1.1 400 ", ErrorCode::BadRequest),
    (b"HTTP/1.1 431 ", ErrorCode::HeaderFieldsTooLarge),
];

fn looks_like_refusal(bytes: &[u8]) -> bool {
    REFUSALS.iter().any(|(prefix, _)| bytes.starts_with(prefix))
}

/// The shaped form of hyper's own refusal, or `None` for anything else. Hive's responses all
/// carry `x-request-id` and an error body, so a bodyless 400/431 without one is hyper's.
fn shape(bytes: &[u8]) -> Option<Vec<u8>> {
    let code = REFUSALS
        .iter()
        .find(|(prefix, _)| bytes.starts_with(prefix))
        .map(|(_, code)| *code)?;
    let head = bytes.strip_suffix(b"\r\n\r\n")?;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut kept = Vec::new();
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
        } else if name.eq_ignore_ascii_case("x-request-id")
            || name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return None;
        } else {
            kept.push(line);
        }
    }
    if !empty {
        return None;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_owned(),
            message: code.default_message().to_owned(),
            request_id: Some(request_id.clone()),
        },
    })
    .ok()?;
    // A flood of junk would otherwise log a line per connection.
    if let Some(held_back) = super::LOG.admit("unreadable", std::time::Instant::now()) {
        tracing::info!(
            status = code.status(),
            request_id = %request_id,
            refused_since_last_line = held_back,
            "refused a request that could not be read as HTTP"
        );
    }
    let mut out = format!("{status_line}\r\n");
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\nx-content-type-options: nosniff\r\n\
         cache-control: no-store\r\nx-request-id: {request_id}\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(shaped: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(shaped.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hypers_own_refusals_get_the_error_shape() {
        let raw = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 12:00:00 GMT\r\n\r\n";
        let (head, body) = split(&shape(raw).unwrap());
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(!head.contains("content-length: 0"), "{head}");
        assert_eq!(body["error"]["code"], "request_header_fields_too_large");
        let id = body["error"]["requestId"].as_str().unwrap();
        assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
        let (_, body) =
            split(&shape(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap());
        assert_eq!(body["error"]["code"], "bad_request");
    }

    #[test]
    fn hives_own_answers_pass_untouched() {
        // Hive's answers carry a request id and a body; other statuses and bodies are not hyper's refusals.
        for raw in [
            &b"HTTP/1.1 400 Bad Request\r\nx-request-id: abc\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",
        ] {
            assert!(shape(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
