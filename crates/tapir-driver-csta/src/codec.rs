//! CSTA-XML framing (ECMA-323 Annex J.2): an 8-byte header, then one XML document.
//!
//! The header is two zero bytes, the big-endian total length *including* the header, and the
//! invoke id as four ASCII digits (`9999` marks unsolicited events). [`check`] and [`parse`]
//! work on plain slices so that they can be fuzzed; [`CstaCodec`] wraps them for tokio and
//! resynchronises after garbage instead of dropping the link.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes in the header.
pub const HEADER_LEN: usize = 8;
/// The largest frame the 16-bit length can describe.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// The invoke id of unsolicited events; never used for requests.
pub const EVENT_INVOKE: u16 = 9999;

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub invoke: u16,
    /// The XML document, as sent.
    pub body: Bytes,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad frame header {header:02x?}: {reason}")]
    BadHeader {
        header: [u8; HEADER_LEN],
        reason: &'static str,
    },
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    Oversized { len: usize, limit: usize },
    #[error("a body of {0} bytes cannot be framed (at most 65,527)")]
    BodyTooLong(usize),
    #[error("invoke id {0} is not in 0..=9999")]
    InvokeOutOfRange(u16),
}

/// Reads the header at the start of `buf`: `Ok(None)` when fewer than 8 bytes are there,
/// otherwise the invoke id and the total frame length.
pub fn check_header(buf: &[u8]) -> Result<Option<(u16, usize)>, FrameError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(head);
    let bad = |reason| FrameError::BadHeader { header, reason };
    if header[0] != 0 {
        return Err(bad("the first byte is not zero"));
    }
    // Peers that read and write the first four bytes as one 32-bit length (pyssimist and the
    // OpenScape Voice captures, csta-xml.md §2.1 and §7.1) set byte 1 only for a frame over
    // 64 KiB. Reading the length that way lets such a frame be named oversized and skipped
    // whole, instead of being cut at its low 16 bits and its rest skipped as garbage.
    let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    if len < HEADER_LEN {
        return Err(bad("the length is shorter than the header"));
    }
    let invoke = parse_invoke(&header[4..8]).ok_or_else(|| bad("the invoke id is not 4 digits"))?;
    Ok(Some((invoke, len)))
}

/// The total length of the frame at the start of `buf` once it is complete, `Ok(None)` while
/// more bytes are needed; an error for a bad header or a frame over `limit`.
pub fn check(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    let Some((_, len)) = check_header(buf)? else {
        return Ok(None);
    };
    if len > limit {
        return Err(FrameError::Oversized { len, limit });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Parses the one complete frame that `buf` holds (as measured by [`check`]).
pub fn parse(buf: &[u8]) -> Result<Frame, FrameError> {
    let Some((invoke, len)) = check_header(buf)? else {
        return Err(short_header(buf));
    };
    let body = buf.get(HEADER_LEN..len).unwrap_or(&buf[HEADER_LEN..]);
    Ok(Frame {
        invoke,
        body: Bytes::copy_from_slice(body),
    })
}

fn short_header(buf: &[u8]) -> FrameError {
    let mut header = [0u8; HEADER_LEN];
    header[..buf.len()].copy_from_slice(buf);
    FrameError::BadHeader {
        header,
        reason: "fewer than 8 bytes",
    }
}

fn parse_invoke(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u16::from(b - b'0'))
    })
}

/// Appends `body` framed with `invoke` to `dst`.
pub fn encode(invoke: u16, body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    if invoke > EVENT_INVOKE {
        return Err(FrameError::InvokeOutOfRange(invoke));
    }
    let total = body.len() + HEADER_LEN;
    let len = u16::try_from(total).map_err(|_| FrameError::BodyTooLong(body.len()))?;
    dst.reserve(total);
    dst.put_u16(0);
    dst.put_u16(len);
    dst.put_slice(format!("{invoke:04}").as_bytes());
    dst.put_slice(body);
    Ok(())
}

/// The offset of the next place in `buf` (after the first byte) where a valid header could
/// start, or the offset from which bytes must be kept because a header may still be arriving.
fn resync_point(buf: &[u8]) -> usize {
    (1..buf.len())
        .find(|&at| {
            let rest = &buf[at..];
            if rest.len() < HEADER_LEN {
                return rest[0] == 0;
            }
            matches!(check_header(rest), Ok(Some(_)))
        })
        .unwrap_or(buf.len())
}

/// What the decoder yields: a frame, or bytes it skipped to find the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(Frame),
    Skipped { bytes: usize, error: FrameError },
}

/// The tokio codec: frames in, frames out, with a size limit and resynchronisation.
#[derive(Debug, Clone)]
pub struct CstaCodec {
    limit: usize,
    /// Bytes of an oversized frame still to be thrown away.
    discarding: usize,
}

impl CstaCodec {
    /// A codec that refuses frames longer than `limit` (at most [`MAX_FRAME`]).
    pub fn new(limit: usize) -> CstaCodec {
        CstaCodec {
            limit: limit.clamp(HEADER_LEN, MAX_FRAME),
            discarding: 0,
        }
    }
}

impl Default for CstaCodec {
    fn default() -> CstaCodec {
        CstaCodec::new(MAX_FRAME)
    }
}

impl Decoder for CstaCodec {
    type Item = Decoded;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, std::io::Error> {
        if self.discarding > 0 {
            let n = self.discarding.min(src.len());
            src.advance(n);
            self.discarding -= n;
            if self.discarding > 0 {
                return Ok(None);
            }
        }
        match check(src, self.limit) {
            Ok(None) => Ok(None),
            Ok(Some(len)) => {
                let frame = src.split_to(len);
                parse(&frame)
                    .map(|f| Some(Decoded::Frame(f)))
                    .or_else(|error| Ok(Some(Decoded::Skipped { bytes: len, error })))
            }
            Err(error @ FrameError::Oversized { len, .. }) => {
                // The length is trustworthy, so the frame can be skipped whole.
                let n = len.min(src.len());
                src.advance(n);
                self.discarding = len - n;
                Ok(Some(Decoded::Skipped { bytes: len, error }))
            }
            Err(error) => {
                let bytes = resync_point(src);
                src.advance(bytes);
                Ok(Some(Decoded::Skipped { bytes, error }))
            }
        }
    }
}

impl Encoder<Frame> for CstaCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        encode(frame.invoke, &frame.body, dst)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(invoke: u16, body: &str) -> BytesMut {
        let mut out = BytesMut::new();
        encode(invoke, body.as_bytes(), &mut out).unwrap();
        out
    }

    fn decode_all(codec: &mut CstaCodec, buf: &mut BytesMut) -> Vec<Decoded> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn the_header_is_zero_zero_length_and_four_digits() {
        let out = framed(7, "<A/>");
        assert_eq!(&out[..], b"\x00\x00\x00\x0c0007<A/>");
        assert_eq!(check(&out, MAX_FRAME), Ok(Some(12)));
        assert_eq!(check(&out[..11], MAX_FRAME), Ok(None));
        let frame = parse(&out).unwrap();
        assert_eq!((frame.invoke, &frame.body[..]), (7, &b"<A/>"[..]));
    }

    #[test]
    fn the_osv_capture_header_measures_the_whole_frame() {
        // 0x03EB = 1003 bytes with the header, invoke 9999 (csta-xml.md §2.1).
        let header = b"\x00\x00\x03\xeb9999";
        assert_eq!(check_header(header), Ok(Some((EVENT_INVOKE, 1003))));
    }

    #[test]
    fn bad_headers_and_limits_are_typed_errors() {
        assert!(matches!(
            check(b"\x01\x00\x00\x0c0007<A/>", MAX_FRAME),
            Err(FrameError::BadHeader { .. })
        ));
        assert!(matches!(
            check(b"\x00\x00\x00\x0400070000", MAX_FRAME),
            Err(FrameError::BadHeader { .. })
        ));
        assert!(matches!(
            check(b"\x00\x00\x00\x0c00x7<A/>", MAX_FRAME),
            Err(FrameError::BadHeader { .. })
        ));
        assert_eq!(
            check(&framed(1, "<Abc/>"), 10),
            Err(FrameError::Oversized { len: 14, limit: 10 })
        );
        let mut out = BytesMut::new();
        assert_eq!(
            encode(1, &vec![b'x'; 65_528], &mut out),
            Err(FrameError::BodyTooLong(65_528))
        );
        assert_eq!(
            encode(10_000, b"", &mut out),
            Err(FrameError::InvokeOutOfRange(10_000))
        );
    }

    #[test]
    fn the_decoder_skips_garbage_and_finds_the_next_frame() {
        let mut codec = CstaCodec::default();
        let mut buf = BytesMut::from(&b"HTTP/1.1 400 Bad\r\n\r\n"[..]);
        buf.extend_from_slice(&framed(9999, "<E/>"));
        let items = decode_all(&mut codec, &mut buf);
        assert!(
            matches!(items[0], Decoded::Skipped { bytes: 20, .. }),
            "{items:?}"
        );
        assert!(matches!(&items[1], Decoded::Frame(f) if f.invoke == 9999));
        assert!(buf.is_empty());
    }

    #[test]
    fn the_decoder_skips_an_oversized_frame_arriving_in_pieces() {
        let mut codec = CstaCodec::new(100);
        let big = framed(3, &"x".repeat(200));
        let mut buf = BytesMut::from(&big[..50]);
        let items = decode_all(&mut codec, &mut buf);
        assert!(matches!(items[0], Decoded::Skipped { bytes: 208, .. }));
        buf.extend_from_slice(&big[50..]);
        buf.extend_from_slice(&framed(4, "<Ok/>"));
        let items = decode_all(&mut codec, &mut buf);
        assert!(
            matches!(&items[..], [Decoded::Frame(f)] if f.invoke == 4),
            "{items:?}"
        );
    }

    #[test]
    fn a_frame_over_64_kib_with_a_32_bit_length_is_skipped_whole() {
        // 70,000 bytes as a peer with a 32-bit length writes them, after some garbage.
        let mut big = BytesMut::from(&b"junk"[..]);
        big.extend_from_slice(&70_000u32.to_be_bytes());
        big.extend_from_slice(b"9999");
        big.extend_from_slice(&vec![b'x'; 70_000 - HEADER_LEN]);
        big.extend_from_slice(&framed(9999, "<E/>"));
        let mut codec = CstaCodec::default();
        let items = decode_all(&mut codec, &mut big);
        assert!(
            matches!(
                &items[..],
                [
                    Decoded::Skipped { bytes: 4, .. },
                    Decoded::Skipped {
                        bytes: 70_000,
                        error: FrameError::Oversized { len: 70_000, .. }
                    },
                    Decoded::Frame(f),
                ] if f.invoke == 9999
            ),
            "{items:?}"
        );
    }

    #[test]
    fn random_bytes_never_panic_and_are_always_consumed() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2_000 {
            let mut codec = CstaCodec::new(64 + round % 300);
            let mut buf = BytesMut::new();
            for _ in 0..(round % 97) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Bias towards zeros and digits so that headers look plausible.
                let byte = match seed % 4 {
                    0 => 0,
                    1 => b'0' + (seed >> 8) as u8 % 10,
                    _ => (seed >> 16) as u8,
                };
                buf.put_u8(byte);
            }
            let _ = check(&buf, MAX_FRAME);
            let _ = parse(&buf);
            let before = buf.len();
            let items = decode_all(&mut codec, &mut buf);
            assert!(buf.len() <= before);
            assert!(items.len() <= before + 1);
        }
    }
}
