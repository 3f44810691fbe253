//! The server side of one WebSocket (RFC 6455), holding no buffer while the connection is
//! idle (issue 14: ten thousand watchers in a classroom each cost what their idle state costs).
//!
//! A general-purpose WebSocket keeps a read buffer and a write buffer for the connection's
//! life, and both only grow: a client that once received a 1 MB notebook keeps 1 MB. Here
//! - a read starts into a buffer on the stack; only the bytes of a frame still arriving are
//!   kept (allocated for that frame's size), and nothing once it is complete;
//! - frames to send are formatted into a buffer that is freed as soon as it is written.
//!
//! Frame headers are parsed and formatted by tungstenite ([`FrameHeader`]); this module keeps
//! the connection's state: fragments, control frames, limits, the close code. It is generic
//! over the byte stream, so tests drive it over an in-memory pipe.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Bytes read at once into the stack when no frame is arriving: a typical edit or presence
/// message fits, and a larger frame's header tells how much to allocate for the rest.
const FIRST_READ: usize = 4096;

/// Most bytes read at once into a frame that is still arriving.
const LATER_READ: usize = 64 * 1024;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
const MAX_HEADER: usize = 14;

/// What a client sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A binary message (every y-websocket message is one).
    Binary(Bytes),
    /// A text message (not y-websocket); its content is not kept.
    Text,
    /// A ping, to be answered with a pong carrying the same data.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client closes, with its status code if it gave one.
    Close(Option<u16>),
}

/// What [`Socket::poll_io`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Io {
    /// Everything queued is written.
    Written,
    /// A message arrived, or (`None`) the client closed the stream.
    Read(Option<Incoming>),
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A frame or message larger than the limit.
    #[error("message larger than {limit} bytes")]
    TooBig {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Frames that break RFC 6455.
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

/// One WebSocket connection, server side.
pub struct Socket<T> {
    io: T,
    /// The largest message (and frame) accepted, in bytes.
    limit: usize,
    /// Bytes of frames not yet complete; empty (unallocated) between frames.
    input: Vec<u8>,
    /// A fragmented data message being assembled: whether it is text, and its bytes so far.
    fragments: Option<(bool, Vec<u8>)>,
    /// Formatted frames not yet written; empty (unallocated) once written.
    output: Vec<u8>,
    /// How much of `output` is written.
    written: usize,
    /// A pong owed while earlier frames are still being written. Only the latest ping's is
    /// kept (RFC 6455, 5.5.3), so a client that pings and never reads cannot grow `output`.
    pong: Option<Bytes>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Socket<T> {
    /// A connection on `io`, after the handshake, accepting messages up to `limit` bytes.
    pub fn new(io: T, limit: usize) -> Self {
        Self {
            io,
            limit,
            input: Vec::new(),
            fragments: None,
            output: Vec::new(),
            written: 0,
            pong: None,
        }
    }

    /// The stream under the WebSocket.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Queues a binary message; [`Socket::poll_io`] or [`Socket::poll_flush`] writes it.
    pub fn send_binary(&mut self, payload: &[u8]) {
        self.queue(OpCode::Data(Data::Binary), payload);
    }

    /// Queues a ping.
    pub fn send_ping(&mut self) {
        self.queue(OpCode::Control(Control::Ping), &[]);
    }

    /// Queues a pong answering a ping's `data`; while earlier frames are still being
    /// written, it replaces any pong that waits for them.
    pub fn send_pong(&mut self, data: Bytes) {
        if self.is_writing() {
            self.pong = Some(data);
        } else {
            self.queue(OpCode::Control(Control::Pong), &data);
        }
    }

    /// Queues a close frame with `code` and `reason` (cut to the 123 bytes a close frame
    /// holds, at a character boundary).
    pub fn send_close(&mut self, code: u16, reason: &str) {
        // Nothing follows a close frame, a pong still owed included.
        self.pong = None;
        let reason = close_reason(reason);
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        self.queue(OpCode::Control(Control::Close), &payload);
    }

    /// Whether queued frames are still to be written.
    pub fn is_writing(&self) -> bool {
        self.written < self.output.len()
    }

    fn queue(&mut self, opcode: OpCode, payload: &[u8]) {
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let length = payload.len() as u64;
        self.output.reserve(header.len(length) + payload.len());
        // Formatting into a Vec cannot fail.
        let _ = header.format(length, &mut self.output);
        self.output.extend_from_slice(payload);
    }

    /// Writes what is queued and flushes; the buffer is freed once written.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.is_writing() {
                let unwritten = &self.output[self.written..];
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, unwritten))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
            }
            let Some(pong) = self.pong.take() else { break };
            self.output.clear();
            self.written = 0;
            self.queue(OpCode::Control(Control::Pong), &pong);
        }
        self.output = Vec::new();
        self.written = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes what it can of what is queued, then reads: ready when the queued frames are all
    /// written, with the next message, with `None` once the client closed the stream, or
    /// with the error that ended reading or writing. While pending, the task is woken when
    /// the socket can be read or written again.
    pub fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<Io, SocketError>> {
        if self.is_writing() {
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(Io::Written)),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => {}
            }
        }
        self.poll_read(cx).map_ok(Io::Read)
    }

    /// Reads the next message.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Incoming>, SocketError>> {
        loop {
            let wanted = match self.next_frame()? {
                Step::Message(message) => return Poll::Ready(Ok(Some(message))),
                Step::Frame => continue,
                Step::Wanted(wanted) => wanted,
            };
            if self.input.is_empty() {
                let mut first = [0u8; FIRST_READ];
                let mut buf = ReadBuf::new(&mut first);
                ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
                if buf.filled().is_empty() {
                    return Poll::Ready(self.ended());
                }
                self.input = buf.filled().to_vec();
            } else {
                // The rest of the frame, straight into its place, at most a socket buffer's
                // worth at a time (the space is zeroed first).
                let len = self.input.len();
                self.input.reserve_exact(wanted);
                let wanted = wanted.min(LATER_READ);
                self.input.resize(len + wanted, 0);
                let mut buf = ReadBuf::new(&mut self.input[len..]);
                let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
                let n = buf.filled().len();
                self.input.truncate(len + n);
                ready!(read)?;
                if n == 0 {
                    return Poll::Ready(self.ended());
                }
            }
        }
    }

    /// The stream ended: fine between frames, an error inside one.
    fn ended(&self) -> Result<Option<Incoming>, SocketError> {
        if self.input.is_empty() && self.fragments.is_none() {
            Ok(None)
        } else {
            Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())
        }
    }

    /// Takes the frame at the start of `input` if it is complete.
    fn next_frame(&mut self) -> Result<Step, SocketError> {
        let mut cursor = io::Cursor::new(&self.input);
        let Some((header, length)) = FrameHeader::parse(&mut cursor)
            .map_err(|_| SocketError::Protocol("malformed frame header"))?
        else {
            return Ok(Step::Wanted(
                MAX_HEADER.saturating_sub(self.input.len()).max(1),
            ));
        };
        let start = cursor.position() as usize;
        if length > self.limit as u64 {
            return Err(SocketError::TooBig { limit: self.limit });
        }
        let end = start + length as usize;
        if self.input.len() < end {
            return Ok(Step::Wanted(end - self.input.len()));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(SocketError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let Some(mask) = header.mask else {
            return Err(SocketError::Protocol("a client's frames must be masked"));
        };
        let payload = if end == self.input.len() {
            // The usual case: the frame is all there is; its buffer becomes the message.
            let mut input = std::mem::take(&mut self.input);
            unmask(&mut input[start..], mask);
            Bytes::from(input).slice(start..)
        } else {
            let mut payload = self.input[start..end].to_vec();
            unmask(&mut payload, mask);
            self.input.drain(..end);
            Bytes::from(payload)
        };
        self.frame(header.opcode, header.is_final, payload)
    }

    /// Handles one complete frame: a message, a fragment of one, or a control frame.
    fn frame(&mut self, opcode: OpCode, last: bool, payload: Bytes) -> Result<Step, SocketError> {
        let message = match opcode {
            OpCode::Control(control) => {
                if !last || payload.len() > 125 {
                    return Err(SocketError::Protocol(
                        "control frames are single frames of at most 125 bytes",
                    ));
                }
                match control {
                    Control::Ping => Incoming::Ping(payload),
                    Control::Pong => Incoming::Pong,
                    Control::Close => Incoming::Close(close_code(&payload)?),
                    Control::Reserved(_) => {
                        return Err(SocketError::Protocol("unknown control opcode"));
                    }
                }
            }
            OpCode::Data(Data::Continue) => {
                let Some((text, mut bytes)) = self.fragments.take() else {
                    return Err(SocketError::Protocol(
                        "a continuation frame with no message",
                    ));
                };
                if bytes.len() + payload.len() > self.limit {
                    return Err(SocketError::TooBig { limit: self.limit });
                }
                bytes.extend_from_slice(&payload);
                if !last {
                    self.fragments = Some((text, bytes));
                    return Ok(Step::Frame);
                }
                if text {
                    Incoming::Text
                } else {
                    Incoming::Binary(bytes.into())
                }
            }
            OpCode::Data(data @ (Data::Binary | Data::Text)) => {
                if self.fragments.is_some() {
                    return Err(SocketError::Protocol(
                        "a new message before the last one ended",
                    ));
                }
                let text = data == Data::Text;
                if !last {
                    self.fragments = Some((text, payload.to_vec()));
                    return Ok(Step::Frame);
                }
                if text {
                    Incoming::Text
                } else {
                    Incoming::Binary(payload)
                }
            }
            OpCode::Data(Data::Reserved(_)) => {
                return Err(SocketError::Protocol("unknown data opcode"));
            }
        };
        Ok(Step::Message(message))
    }
}

/// Where reading stands after looking at the buffered bytes.
enum Step {
    /// A whole message (or control frame) arrived.
    Message(Incoming),
    /// A fragment arrived; look again.
    Frame,
    /// At least this many more bytes are needed.
    Wanted(usize),
}

/// The status code of a close frame's payload, if it has one.
fn close_code(payload: &[u8]) -> Result<Option<u16>, SocketError> {
    match payload {
        [] => Ok(None),
        [high, low, ..] => Ok(Some(u16::from_be_bytes([*high, *low]))),
        [_] => Err(SocketError::Protocol(
            "a close frame with a one-byte payload",
        )),
    }
}

/// The code to answer a client's close with: its own, when it may be sent (RFC 6455, 7.4),
/// else 1000 when it gave none, else 1002.
pub fn close_reply(code: Option<u16>) -> u16 {
    match code {
        None => 1000,
        Some(code @ (1000..=1003 | 1007..=1014 | 3000..=4999)) => code,
        Some(_) => 1002,
    }
}

fn unmask(bytes: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// A close frame's reason may hold at most 123 bytes (RFC 6455, 5.5); longer ones are cut at a
/// character boundary rather than making the close frame itself fail.
fn close_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// A client frame: masked, as clients must send them.
    fn client_frame(opcode: OpCode, last: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let header = FrameHeader {
            is_final: last,
            opcode,
            mask: Some(mask),
            ..FrameHeader::default()
        };
        let mut frame = Vec::new();
        header.format(payload.len() as u64, &mut frame).unwrap();
        let start = frame.len();
        frame.extend_from_slice(payload);
        unmask(&mut frame[start..], mask);
        frame
    }

    fn binary(payload: &[u8]) -> Vec<u8> {
        client_frame(OpCode::Data(Data::Binary), true, payload)
    }

    fn pair(limit: usize) -> (Socket<DuplexStream>, DuplexStream) {
        let (server, client) = tokio::io::duplex(1 << 20);
        (Socket::new(server, limit), client)
    }

    async fn next(socket: &mut Socket<DuplexStream>) -> Result<Option<Incoming>, SocketError> {
        loop {
            match poll_fn(|cx| socket.poll_io(cx)).await? {
                Io::Written => continue,
                Io::Read(message) => return Ok(message),
            }
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut));
    }

    #[tokio::test]
    async fn messages_arrive_whole_and_no_buffer_is_kept_between_them() {
        let (mut socket, mut client) = pair(1 << 20);
        // Two frames in one write, then a large one in pieces.
        let mut two = binary(b"first");
        two.extend(binary(b"second"));
        client.write_all(&two).await.unwrap();
        assert_eq!(
            next(&mut socket).await.unwrap(),
            Some(Incoming::Binary(Bytes::from_static(b"first")))
        );
        assert_eq!(
            next(&mut socket).await.unwrap(),
            Some(Incoming::Binary(Bytes::from_static(b"second")))
        );
        assert_eq!(socket.input.capacity(), 0, "nothing kept between frames");

        let large: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let frame = binary(&large);
        let (head, tail) = frame.split_at(5_000);
        client.write_all(head).await.unwrap();
        let reader = tokio::spawn(async move {
            let message = next(&mut socket).await.unwrap();
            (socket, message)
        });
        tokio::task::yield_now().await;
        client.write_all(tail).await.unwrap();
        let (socket, message) = reader.await.unwrap();
        assert_eq!(message, Some(Incoming::Binary(Bytes::from(large))));
        assert_eq!(socket.input.capacity(), 0);
    }

    #[tokio::test]
    async fn fragments_and_control_frames_between_them() {
        let (mut socket, mut client) = pair(1 << 20);
        let mut frames = client_frame(OpCode::Data(Data::Binary), false, b"ab");
        frames.extend(client_frame(OpCode::Control(Control::Ping), true, b"hi"));
        frames.extend(client_frame(OpCode::Data(Data::Continue), false, b"cd"));
        frames.extend(client_frame(OpCode::Data(Data::Continue), true, b"ef"));
        frames.extend(client_frame(OpCode::Data(Data::Text), true, b"text"));
        frames.extend(client_frame(
            OpCode::Control(Control::Close),
            true,
            &4001u16.to_be_bytes(),
        ));
        client.write_all(&frames).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(next(&mut socket).await.unwrap().unwrap());
        }
        assert_eq!(
            seen,
            [
                Incoming::Ping(Bytes::from_static(b"hi")),
                Incoming::Binary(Bytes::from_static(b"abcdef")),
                Incoming::Text,
                Incoming::Close(Some(4001)),
            ]
        );
        assert_eq!(close_reply(Some(4001)), 4001);
        assert_eq!(close_reply(Some(1005)), 1002, "1005 is never sent");
        assert_eq!(close_reply(None), 1000);
        drop(client);
        assert!(next(&mut socket).await.unwrap().is_none(), "then the end");
    }

    #[tokio::test]
    async fn oversized_frames_and_messages_are_refused_before_they_are_read() {
        let (mut socket, mut client) = pair(1_000);
        // Only the header of a 1 GB frame: refused without waiting for (or allocating) more.
        client
            .write_all(&[0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4])
            .await
            .unwrap();
        assert!(matches!(
            next(&mut socket).await,
            Err(SocketError::TooBig { limit: 1_000 })
        ));

        let (mut socket, mut client) = pair(1_000);
        let mut frames = client_frame(OpCode::Data(Data::Binary), false, &[0; 600]);
        frames.extend(client_frame(OpCode::Data(Data::Continue), true, &[0; 600]));
        client.write_all(&frames).await.unwrap();
        assert!(matches!(
            next(&mut socket).await,
            Err(SocketError::TooBig { .. })
        ));
    }

    #[tokio::test]
    async fn protocol_errors_are_named() {
        let cases: [(Vec<u8>, &str); 5] = [
            (vec![0x82, 0x02, b'h', b'i'], "masked"),
            (
                client_frame(OpCode::Data(Data::Continue), true, b"x"),
                "continuation",
            ),
            (
                client_frame(OpCode::Control(Control::Ping), false, b""),
                "control frames",
            ),
            (vec![0xc2, 0x80, 1, 2, 3, 4], "reserved bits"),
            (
                client_frame(OpCode::Control(Control::Close), true, &[3]),
                "one-byte",
            ),
        ];
        for (bytes, expected) in cases {
            let (mut socket, mut client) = pair(1_000);
            client.write_all(&bytes).await.unwrap();
            let err = next(&mut socket).await.unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should name {expected}");
        }
    }

    #[tokio::test]
    async fn a_client_that_pings_and_never_reads_is_owed_one_pong() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut socket = Socket::new(server, 1_000);
        socket.send_binary(&[1; 500]);
        // Part of it fits the pipe; the rest waits for the client to read.
        let waker = futures_util::task::noop_waker();
        let _ = socket.poll_io(&mut Context::from_waker(&waker));
        assert!(socket.is_writing());
        let before = socket.output.len();
        for i in 0..100u8 {
            socket.send_pong(Bytes::from(vec![i]));
        }
        assert_eq!(socket.output.len(), before, "pongs do not pile up");
        let writer = tokio::spawn(async move {
            poll_fn(|cx| socket.poll_flush(cx)).await.unwrap();
        });
        let mut bytes = vec![0; 4 + 500 + 3];
        client.read_exact(&mut bytes).await.unwrap();
        writer.await.unwrap();
        assert_eq!(&bytes[..4], [0x82, 126, 1, 244]);
        assert_eq!(&bytes[504..], [0x8a, 1, 99], "one pong, the latest ping's");

        // A close frame is the last frame: a pong still owed is not sent after it.
        let (server, mut client) = tokio::io::duplex(64);
        let mut socket = Socket::new(server, 1_000);
        socket.send_binary(&[1; 500]);
        let _ = socket.poll_io(&mut Context::from_waker(&waker));
        socket.send_pong(Bytes::from_static(b"p"));
        socket.send_close(1000, "");
        let writer = tokio::spawn(async move {
            poll_fn(|cx| socket.poll_flush(cx)).await.unwrap();
        });
        let mut bytes = Vec::new();
        let read = client.read_to_end(&mut bytes);
        let (read, _) = tokio::join!(read, writer);
        read.unwrap();
        assert_eq!(&bytes[504..], [0x88, 2, 0x03, 0xe8]);
    }

    #[tokio::test]
    async fn frames_are_written_unmasked_and_the_buffer_freed() {
        let (mut socket, mut client) = pair(1_000);
        socket.send_binary(&[7; 300]);
        socket.send_ping();
        socket.send_close(4000, &"é".repeat(100));
        assert!(socket.is_writing());
        // Finishing a write is an event of its own: the connection then takes more frames.
        assert_eq!(poll_fn(|cx| socket.poll_io(cx)).await.unwrap(), Io::Written);
        assert!(!socket.is_writing());
        assert_eq!(socket.output.capacity(), 0, "freed once written");
        drop(socket);
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        // 300 bytes take the 16-bit length form.
        assert_eq!(&bytes[..4], [0x82, 126, 1, 44]);
        assert_eq!(&bytes[4..304], [7; 300]);
        assert_eq!(&bytes[304..306], [0x89, 0]);
        let close = &bytes[306..];
        assert_eq!(close[0], 0x88);
        assert_eq!(close[1] as usize, close.len() - 2);
        assert_eq!(&close[2..4], 4000u16.to_be_bytes());
        assert!(close.len() - 4 <= 123, "the reason is cut to fit");
    }
}
