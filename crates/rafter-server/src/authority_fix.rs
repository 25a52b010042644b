//! etcdctl 3.4 dials some commands (`endpoint status`, `endpoint health`,
//! `endpoint hashkv`) with the endpoint exactly as given, so with
//! `--endpoints=http://host:port` grpc-go sends `:authority:
//! http://host:port`. etcd's Go server accepts that; h2 (under tonic)
//! rejects it as a malformed authority and resets the stream, so those
//! commands failed against Rafter. This layer sits between an accepted
//! client connection and the HTTP/2 server: it reads the connection's first
//! header block, and if its `:authority` carries a scheme it rewrites the
//! authority to the host and port in that and every later header block,
//! re-encoding them with its own HPACK encoder (the client's compression
//! state is only known to this layer's decoder from then on). Connections
//! whose first block is well-formed, and HTTP/1.1 connections, are passed
//! through untouched after that first look.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a client sends first on an HTTP/2 connection.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Frames this layer writes stay within HTTP/2's default frame size.
const MAX_FRAME_PAYLOAD_BYTES: usize = 16_384;
/// Largest header block buffered while it arrives in pieces.
const MAX_HEADER_BLOCK_BYTES: usize = 1 << 20;
const READ_CHUNK_BYTES: usize = 16 * 1024;

enum Mode {
    /// Waiting for enough bytes to tell HTTP/2 from HTTP/1.1.
    Preface,
    /// Reading frames until the first header block decides.
    Undecided,
    /// Re-encoding every header block with a repaired authority.
    Rewriting,
    /// Bytes go through unchanged.
    Passthrough,
}

/// The header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream_id: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The frames as received, sent on unchanged if nothing is rewritten.
    original: Vec<u8>,
}

/// A client connection with the authority repair in front of it.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the connection and not yet processed.
    input: Vec<u8>,
    /// Processed bytes not yet handed to the server.
    output: Vec<u8>,
    output_at: usize,
    block: Option<Block>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            input: Vec::new(),
            output: Vec::new(),
            output_at: 0,
            block: None,
            decoder: Decoder::new(),
            encoder: Encoder::new(),
            eof: false,
        }
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Passthrough => {
                    self.output.append(&mut self.input);
                    return;
                }
                Mode::Preface => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                    } else if n < PREFACE.len() {
                        if self.eof {
                            self.mode = Mode::Passthrough;
                        } else {
                            return;
                        }
                    } else {
                        self.output.extend(self.input.drain(..PREFACE.len()));
                        self.mode = Mode::Undecided;
                    }
                }
                Mode::Undecided | Mode::Rewriting => {
                    if !self.next_frame() {
                        if self.eof {
                            self.flush_block();
                            self.mode = Mode::Passthrough;
                            continue;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Handles one whole frame from `input`; false when none is there.
    fn next_frame(&mut self) -> bool {
        if self.input.len() < FRAME_HEADER_BYTES {
            return false;
        }
        let length = u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]]) as usize;
        if self.input.len() < FRAME_HEADER_BYTES + length {
            return false;
        }
        let frame: Vec<u8> = self.input.drain(..FRAME_HEADER_BYTES + length).collect();
        let kind = frame[3];
        let flags = frame[4];
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_BYTES..];
        match (kind, self.block.as_mut()) {
            (TYPE_HEADERS, None) => {
                let Some(fragment) = header_fragment(flags, payload) else {
                    return self.give_up(frame);
                };
                self.block = Some(Block {
                    stream_id,
                    end_stream: flags & FLAG_END_STREAM != 0,
                    fragment: fragment.to_vec(),
                    original: frame.clone(),
                });
            }
            (TYPE_CONTINUATION, Some(block))
                if block.stream_id == stream_id
                    && block.fragment.len() + payload.len() <= MAX_HEADER_BLOCK_BYTES =>
            {
                block.fragment.extend_from_slice(payload);
                block.original.extend_from_slice(&frame);
            }
            (_, None) => {
                self.output.extend_from_slice(&frame);
                return true;
            }
            // Anything else in the middle of a header block is the
            // server's to refuse.
            (_, Some(_)) => return self.give_up(frame),
        }
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block();
        }
        true
    }

    /// A complete header block: decoded, and sent on as it came or
    /// re-encoded with the authority repaired.
    fn finish_block(&mut self) {
        let block = self.block.take().expect("a block in progress");
        let Ok(headers) = self.decoder.decode(&block.fragment) else {
            self.output.extend_from_slice(&block.original);
            self.mode = Mode::Passthrough;
            return;
        };
        if matches!(self.mode, Mode::Undecided) {
            let malformed = headers
                .iter()
                .any(|(name, value)| name == b":authority" && repaired(value).is_some());
            if !malformed {
                self.output.extend_from_slice(&block.original);
                self.mode = Mode::Passthrough;
                return;
            }
            self.mode = Mode::Rewriting;
        }
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                let value = match (name.as_slice(), repaired(&value)) {
                    (b":authority", Some(authority)) => authority,
                    _ => value,
                };
                (name, value)
            })
            .collect();
        let encoded = self
            .encoder
            .encode(fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        write_header_frames(
            &mut self.output,
            block.stream_id,
            block.end_stream,
            &encoded,
        );
    }

    /// Sends a block cut short by the end of the connection as it came.
    fn flush_block(&mut self) {
        if let Some(block) = self.block.take() {
            self.output.extend_from_slice(&block.original);
        }
        self.output.append(&mut self.input);
    }

    /// Something this layer does not follow: the rest goes through as is,
    /// for the server to judge (only possible before any rewriting).
    fn give_up(&mut self, frame: Vec<u8>) -> bool {
        self.flush_block();
        self.output.extend_from_slice(&frame);
        self.mode = Mode::Passthrough;
        true
    }
}

/// The header block fragment of a HEADERS frame's payload.
fn header_fragment(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & FLAG_PADDED != 0 {
        let padding = *payload.first()? as usize;
        start += 1;
        end = end.checked_sub(padding)?;
    }
    if flags & FLAG_PRIORITY != 0 {
        start += 5;
    }
    payload.get(start..end)
}

/// `host:port` for an authority written as a URL (`http://host:port/...`).
fn repaired(authority: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(authority).ok()?;
    let (_, rest) = text.split_once("://")?;
    let host = rest.split('/').next().unwrap_or_default();
    (!host.is_empty()).then(|| host.as_bytes().to_vec())
}

/// A header block as one HEADERS frame and as many CONTINUATION frames as
/// its size needs.
fn write_header_frames(out: &mut Vec<u8>, stream_id: u32, end_stream: bool, block: &[u8]) {
    let chunks: Vec<&[u8]> = if block.is_empty() {
        vec![block]
    } else {
        block.chunks(MAX_FRAME_PAYLOAD_BYTES).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let mut flags = if i + 1 == chunks.len() {
            FLAG_END_HEADERS
        } else {
            0
        };
        let kind = if i == 0 {
            if end_stream {
                flags |= FLAG_END_STREAM;
            }
            TYPE_HEADERS
        } else {
            TYPE_CONTINUATION
        };
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.output_at < this.output.len() {
                let n = (this.output.len() - this.output_at).min(buf.remaining());
                buf.put_slice(&this.output[this.output_at..this.output_at + n]);
                this.output_at += n;
                if this.output_at == this.output.len() {
                    this.output.clear();
                    this.output_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.eof {
                // Whatever was held back is out; the connection ended.
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                    }
                    this.input.extend_from_slice(read.filled());
                    this.process();
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for AuthorityFix<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What a client sends: the preface, a SETTINGS frame, then one
    /// request's headers per authority (and a DATA frame after each).
    fn client_bytes(authorities: &[&str]) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        let mut encoder = Encoder::new();
        for (i, authority) in authorities.iter().enumerate() {
            let stream_id = 1 + 2 * i as u32;
            let block = encoder.encode([
                (&b":method"[..], &b"POST"[..]),
                (b":scheme", b"http"),
                (b":path", b"/etcdserverpb.Maintenance/Status"),
                (b":authority", authority.as_bytes()),
                (b"content-type", b"application/grpc"),
            ]);
            write_header_frames(&mut out, stream_id, false, &block);
            out.extend_from_slice(&[0, 0, 2, 0x0, 0x1]);
            out.extend_from_slice(&stream_id.to_be_bytes());
            out.extend_from_slice(b"hi");
        }
        out
    }

    async fn through_layer(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut client, &input)
            .await
            .unwrap();
        drop(client);
        let mut fixed = AuthorityFix::new(server);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        out
    }

    /// The authorities of every header block in a client's bytes.
    fn authorities(bytes: &[u8]) -> Vec<String> {
        assert!(bytes.starts_with(PREFACE));
        let mut rest = &bytes[PREFACE.len()..];
        let mut decoder = Decoder::new();
        let mut found = Vec::new();
        while !rest.is_empty() {
            let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            let (frame, tail) = rest.split_at(FRAME_HEADER_BYTES + length);
            if frame[3] == TYPE_HEADERS {
                let fragment = header_fragment(frame[4], &frame[FRAME_HEADER_BYTES..]).unwrap();
                for (name, value) in decoder.decode(fragment).unwrap() {
                    if name == b":authority" {
                        found.push(String::from_utf8(value).unwrap());
                    }
                }
            }
            rest = tail;
        }
        found
    }

    #[tokio::test]
    async fn an_authority_with_a_scheme_is_repaired_in_every_block() {
        let input = client_bytes(&["http://127.0.0.1:2379", "http://127.0.0.1:2379"]);
        let out = through_layer(input).await;
        assert_eq!(authorities(&out), ["127.0.0.1:2379", "127.0.0.1:2379"]);
    }

    #[tokio::test]
    async fn a_well_formed_connection_and_http1_pass_unchanged() {
        let input = client_bytes(&["127.0.0.1:2379", "http://127.0.0.1:2379"]);
        assert_eq!(through_layer(input.clone()).await, input);
        let http1 = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(through_layer(http1.clone()).await, http1);
        let short = b"PRI *".to_vec();
        assert_eq!(through_layer(short.clone()).await, short);
    }

    #[test]
    fn big_blocks_are_split_into_continuations() {
        let mut out = Vec::new();
        let block = vec![7u8; MAX_FRAME_PAYLOAD_BYTES + 10];
        write_header_frames(&mut out, 3, true, &block);
        assert_eq!(out[3], TYPE_HEADERS);
        assert_eq!(out[4], FLAG_END_STREAM);
        let second = FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD_BYTES;
        assert_eq!(out[second + 3], TYPE_CONTINUATION);
        assert_eq!(out[second + 4], FLAG_END_HEADERS);
        assert_eq!(out.len(), 2 * FRAME_HEADER_BYTES + block.len());
    }
}
