//! Sans-io Kafka framing: size-prefixed frames to request/response headers and bodies.
//!
//! Nothing here touches a socket; [`crate::connection`] owns the I/O. The broker and the
//! client share these functions so both ends agree on header versions.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::{Error, Result};

/// Kafka's default `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Returns the length of the frame at the start of `buf` (without its 4-byte prefix) once the
/// whole frame is there, `None` while more bytes are needed.
pub fn complete_frame_len(buf: &[u8], limit: usize) -> Result<Option<usize>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as usize > limit {
        return Err(Error::FrameTooLarge { size: size as i64, limit });
    }
    let size = size as usize;
    Ok((buf.len() >= 4 + size).then_some(size))
}

/// The fixed start of every request: enough to answer even a request we cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads the api key, version and correlation id without consuming anything.
pub fn peek_request_prefix(frame: &[u8]) -> Result<RequestPrefix> {
    if frame.len() < 8 {
        return Err(Error::MalformedFrame(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    Ok(RequestPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the request header of a frame whose api key is known; leaves `frame` at the body.
pub fn decode_request_header(api_key: ApiKey, frame: &mut Bytes) -> Result<RequestHeader> {
    let prefix = peek_request_prefix(frame)?;
    let header_version = api_key.request_header_version(prefix.api_version);
    RequestHeader::decode(frame, header_version)
        .map_err(|e| Error::MalformedFrame(format!("request header: {e}")))
}

/// Decodes a request body at the given version. Trailing bytes are tolerated, as Kafka does.
pub fn decode_request_body(api_key: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind> {
    RequestKind::decode(api_key, body, version)
        .map_err(|e| Error::MalformedFrame(format!("{api_key:?} v{version} body: {e}")))
}

/// Encodes a complete response frame (size prefix, header, body).
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| Error::Encode(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| Error::Encode(format!("{api_key:?} v{version}: {e}")))?;
    patch_size(&mut buf);
    Ok(buf.freeze())
}

/// A response for a request we cannot answer in its own schema (an api key we do not know, or
/// a version outside every range we implement): the correlation id and UNSUPPORTED_VERSION.
/// Every Kafka response body that carries a top-level error starts with it or with a
/// throttle time; clients only send such requests when they ignored ApiVersions.
pub fn encode_unsupported(correlation_id: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(10);
    buf.put_i32(6);
    buf.put_i32(correlation_id);
    buf.put_i16(35);
    buf.freeze()
}

/// Encodes a complete request frame.
pub fn encode_request(header: &RequestHeader, body: &RequestKind) -> Result<Bytes> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| Error::Encode(format!("unknown api key {}", header.request_api_key)))?;
    let version = header.request_api_version;
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| Error::Encode(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| Error::Encode(format!("{api_key:?} v{version}: {e}")))?;
    patch_size(&mut buf);
    Ok(buf.freeze())
}

/// Encodes a typed request as a complete frame (size prefix, header, body).
pub fn encode_typed_request<R: kafka_protocol::protocol::Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &kafka_protocol::protocol::StrBytes,
) -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    header.encode(&mut buf, R::header_version(version)).map_err(|e| Error::Encode(e.to_string()))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| Error::Encode(format!("api {} v{version}: {e}", R::KEY)))?;
    patch_size(&mut buf);
    Ok(buf.freeze())
}

/// Decodes a typed response frame (without its size prefix); returns its correlation id too.
pub fn decode_typed_response<R: kafka_protocol::protocol::Request>(
    frame: &mut Bytes,
    version: i16,
) -> Result<(i32, R::Response)> {
    use kafka_protocol::protocol::HeaderVersion;
    let header = ResponseHeader::decode(frame, <R::Response as HeaderVersion>::header_version(version))
        .map_err(|e| Error::MalformedFrame(format!("response header: {e}")))?;
    let body = R::Response::decode(frame, version)
        .map_err(|e| Error::MalformedFrame(format!("response body (api {} v{version}): {e}", R::KEY)))?;
    Ok((header.correlation_id, body))
}

/// Decodes a response frame (without its size prefix) for a request of the given key/version.
pub fn decode_response(api_key: ApiKey, version: i16, frame: &mut Bytes) -> Result<(i32, ResponseKind)> {
    let header = ResponseHeader::decode(frame, api_key.response_header_version(version))
        .map_err(|e| Error::MalformedFrame(format!("response header: {e}")))?;
    let body = ResponseKind::decode(api_key, frame, version)
        .map_err(|e| Error::MalformedFrame(format!("{api_key:?} v{version} response: {e}")))?;
    Ok((header.correlation_id, body))
}

/// Reads the correlation id of a response frame without decoding anything else.
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let mut b = frame.get(..4)?;
    Some(b.get_i32())
}

/// Where a request's one large bytes field (a produce request's records) sits in its encoding:
/// with the field empty, its length prefix ends `from_end` bytes before the end of the frame,
/// as a compact (varint) length or a classic `int32` one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadField {
    pub from_end: usize,
    pub compact: bool,
}

/// Splits `frame`, a request encoded with its payload field empty, around that field: the head
/// ends with the payload's real length (and its size prefix counts the payload), the tail is
/// what follows the field. Writing head, payload and tail gives the frame with the payload in
/// place, without copying the payload into it.
pub fn splice_payload(frame: &[u8], payload_len: usize, field: PayloadField) -> Result<(Bytes, Bytes)> {
    let empty: &[u8] = if field.compact { &[1] } else { &[0, 0, 0, 0] };
    let at = frame.len().checked_sub(field.from_end + empty.len()).filter(|at| *at >= 4);
    let Some(at) = at.filter(|at| &frame[*at..*at + empty.len()] == empty) else {
        return Err(Error::Encode(format!("no empty payload field {} bytes before the end of the request", field.from_end)));
    };
    let too_long = || Error::Encode(format!("a payload of {payload_len} bytes"));
    let len = i32::try_from(payload_len).ok().filter(|l| *l < i32::MAX).ok_or_else(too_long)?;
    let mut head = BytesMut::with_capacity(at + 5);
    head.extend_from_slice(&frame[..at]);
    if field.compact {
        let mut v = len as u32 + 1;
        while v >= 0x80 {
            head.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        head.put_u8(v as u8);
    } else {
        head.put_i32(len);
    }
    let tail = Bytes::copy_from_slice(&frame[at + empty.len()..]);
    let size = i32::try_from(head.len() - 4 + payload_len + tail.len()).map_err(|_| too_long())?;
    head[..4].copy_from_slice(&size.to_be_bytes());
    Ok((head.freeze(), tail))
}

fn patch_size(buf: &mut BytesMut) {
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn frame_length_rules() {
        assert_eq!(complete_frame_len(&[0, 0], 100).expect("ok"), None);
        assert_eq!(complete_frame_len(&[0, 0, 0, 2, 1], 100).expect("ok"), None);
        assert_eq!(complete_frame_len(&[0, 0, 0, 2, 1, 2], 100).expect("ok"), Some(2));
        assert!(complete_frame_len(&[0xff, 0xff, 0xff, 0xff], 100).is_err());
        assert!(complete_frame_len(&[0, 0, 1, 0], 100).is_err());
    }

    #[test]
    fn request_round_trip() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let body = RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("tern"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        );
        let frame = encode_request(&header, &body).expect("encode");
        let len = complete_frame_len(&frame, 1024).expect("len").expect("whole");
        let mut rest = frame.slice(4..4 + len);
        let decoded = decode_request_header(ApiKey::ApiVersions, &mut rest).expect("header");
        assert_eq!(decoded.correlation_id, 77);
        let decoded_body = decode_request_body(ApiKey::ApiVersions, 3, &mut rest).expect("body");
        assert_eq!(decoded_body, body);
    }

    #[test]
    fn response_round_trip() {
        let body = ResponseKind::ApiVersions(ApiVersionsResponse::default().with_error_code(35));
        let frame = encode_response(9, ApiKey::ApiVersions, 3, &body).expect("encode");
        let mut rest = frame.slice(4..);
        let (cid, decoded) = decode_response(ApiKey::ApiVersions, 3, &mut rest).expect("decode");
        assert_eq!(cid, 9);
        assert_eq!(decoded, body);
    }
}
