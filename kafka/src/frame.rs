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

/// One partition's share of a produce request: its index and its records, in parts written
/// one after another (a batch's edited header and its records as fetched, say).
pub struct ProducePartition<'a> {
    pub index: i32,
    pub records: &'a [Bytes],
}

/// A produce request (versions 3 to 11) as the parts of one frame: the fields Tern writes,
/// encoded into small pieces, with every partition's record parts between them as they are,
/// never copied into the frame. Writing the parts in order gives the whole frame, size prefix
/// first. Topics come in the order given, each with its partitions.
#[allow(clippy::too_many_arguments)]
pub fn encode_produce_request(
    version: i16,
    correlation_id: i32,
    client_id: &str,
    transactional_id: Option<&str>,
    acks: i16,
    timeout_ms: i32,
    topics: &[(&str, Vec<ProducePartition<'_>>)],
) -> Result<Vec<Bytes>> {
    if !(3..=11).contains(&version) {
        return Err(Error::Encode(format!("produce v{version} (v3 to v11 are written)")));
    }
    let flexible = version >= 9;
    let too_long = |what: &str| Error::Encode(format!("produce request: {what} too long"));
    // Pieces are either glue (a range of `glue`) or records (an index into `payload`).
    enum Piece {
        Glue(usize, usize),
        Records(usize),
    }
    let mut glue = BytesMut::with_capacity(64 + client_id.len() + topics.iter().map(|(t, ps)| t.len() + 16 * ps.len() + 8).sum::<usize>());
    let mut payload: Vec<&Bytes> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut from = 0;
    let put_len = |glue: &mut BytesMut, len: usize, short: bool| -> Result<()> {
        if flexible {
            put_uvarint(glue, u32::try_from(len + 1).map_err(|_| too_long("a field"))?);
        } else if short {
            glue.put_i16(i16::try_from(len).map_err(|_| too_long("a string"))?);
        } else {
            glue.put_i32(i32::try_from(len).ok().filter(|l| *l < i32::MAX).ok_or_else(|| too_long("a field"))?);
        }
        Ok(())
    };
    glue.put_i32(0);
    glue.put_i16(ApiKey::Produce as i16);
    glue.put_i16(version);
    glue.put_i32(correlation_id);
    // The header's client id is a classic nullable string in every header version.
    glue.put_i16(i16::try_from(client_id.len()).map_err(|_| too_long("the client id"))?);
    glue.put_slice(client_id.as_bytes());
    if flexible {
        glue.put_u8(0);
    }
    match transactional_id {
        Some(id) => {
            put_len(&mut glue, id.len(), true)?;
            glue.put_slice(id.as_bytes());
        }
        None if flexible => glue.put_u8(0),
        None => glue.put_i16(-1),
    }
    glue.put_i16(acks);
    glue.put_i32(timeout_ms);
    put_len(&mut glue, topics.len(), false)?;
    for (topic, partitions) in topics {
        put_len(&mut glue, topic.len(), true)?;
        glue.put_slice(topic.as_bytes());
        put_len(&mut glue, partitions.len(), false)?;
        for p in partitions {
            glue.put_i32(p.index);
            put_len(&mut glue, p.records.iter().map(|r| r.len()).sum(), false)?;
            pieces.push(Piece::Glue(from, glue.len()));
            from = glue.len();
            for r in p.records {
                pieces.push(Piece::Records(payload.len()));
                payload.push(r);
            }
            if flexible {
                glue.put_u8(0);
            }
        }
        if flexible {
            glue.put_u8(0);
        }
    }
    if flexible {
        glue.put_u8(0);
    }
    pieces.push(Piece::Glue(from, glue.len()));
    let size = glue.len() - 4 + payload.iter().map(|r| r.len()).sum::<usize>();
    let size = i32::try_from(size).map_err(|_| too_long("the request"))?;
    glue[..4].copy_from_slice(&size.to_be_bytes());
    let glue = glue.freeze();
    Ok(pieces
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Glue(a, b) => (a < b).then(|| glue.slice(a..b)),
            Piece::Records(i) => payload.get(i).map(|r| (*r).clone()),
        })
        .collect())
}

/// Records at least this long are written as a part of their own; shorter ones are copied.
const RECORDS_PASSED_THROUGH: usize = 4096;

/// What stands in for passed-through records while the rest of a fetch response is encoded:
/// this tag and the records' index (two bytes).
const MARKER_TAG: &[u8; 14] = b"\0tern-records:";

/// A fetch response as the parts of one frame: everything kafka-protocol encodes, with each
/// partition's records (of at least 4 KiB) passed through as a part of its own instead of
/// copied into the frame. Writing the parts in order gives exactly the frame
/// [`encode_response`] would.
///
/// The response is encoded with a 16-byte marker in place of each such partition's records;
/// the markers (each found once, in order, behind its length) are then cut out and the records
/// and their real length put in their place. Should that not hold, the response is encoded
/// whole.
pub fn encode_fetch_response(correlation_id: i32, version: i16, response: &kafka_protocol::messages::FetchResponse) -> Result<Vec<Bytes>> {
    let whole = || Ok(vec![encode_response(correlation_id, ApiKey::Fetch, version, &ResponseKind::Fetch(response.clone()))?]);
    let marker = |i: usize| {
        let mut m = BytesMut::with_capacity(16);
        m.put_slice(MARKER_TAG);
        m.put_u16(i as u16);
        m.freeze()
    };
    let mut stripped = response.clone();
    let mut passed: Vec<Bytes> = Vec::new();
    for partition in stripped.responses.iter_mut().flat_map(|t| &mut t.partitions) {
        if let Some(records) = partition.records.as_mut().filter(|r| r.len() >= RECORDS_PASSED_THROUGH) {
            if passed.len() > usize::from(u16::MAX) {
                break;
            }
            let m = marker(passed.len());
            passed.push(std::mem::replace(records, m));
        }
    }
    if passed.is_empty() {
        return whole();
    }
    let encoded = encode_response(correlation_id, ApiKey::Fetch, version, &ResponseKind::Fetch(stripped))?;
    // Each marker's length before it: a varint of 17 (flexible versions) or an i32 of 16.
    let (prefix, expected): (usize, &[u8]) = if version >= 12 { (1, &[17]) } else { (4, &[0, 0, 0, 16]) };
    let mut cuts = Vec::with_capacity(passed.len());
    let mut at = prefix;
    while at + 16 <= encoded.len() {
        if encoded[at] != 0 || encoded[at..at + 14] != MARKER_TAG[..] {
            at += 1;
            continue;
        }
        let index = usize::from(u16::from_be_bytes([encoded[at + 14], encoded[at + 15]]));
        // Its length must lie after the marker before it.
        let after_last = cuts.last().map_or(0, |c| c + prefix + 16);
        if index != cuts.len() || at - prefix < after_last || encoded[at - prefix..at] != *expected {
            return whole();
        }
        cuts.push(at - prefix);
        at += 16;
    }
    if cuts.len() != passed.len() {
        return whole();
    }
    let mut parts = Vec::with_capacity(2 * cuts.len() + 1);
    let mut from = 0;
    for (cut, records) in cuts.iter().zip(passed) {
        let mut head = BytesMut::with_capacity(cut - from + 5);
        head.put_slice(&encoded[from..*cut]);
        if prefix == 1 {
            put_uvarint(&mut head, records.len() as u32 + 1);
        } else {
            head.put_i32(records.len() as i32);
        }
        parts.push(head.freeze());
        parts.push(records);
        from = cut + prefix + 16;
    }
    parts.push(encoded.slice(from..));
    let Ok(size) = i32::try_from(parts.iter().map(Bytes::len).sum::<usize>() - 4) else { return whole() };
    if parts[0].len() < 4 {
        return whole();
    }
    let mut first = BytesMut::from(&parts[0][..]);
    first[..4].copy_from_slice(&size.to_be_bytes());
    parts[0] = first.freeze();
    Ok(parts)
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
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

    /// A produce request written in parts is byte for byte the request kafka-protocol encodes
    /// with the records inside: for every version Tern sends, with and without a transactional
    /// id, for several topics and partitions with records in several parts, on both sides of
    /// the varint length's byte boundaries.
    /// A fetch response in parts is byte for byte the response encoded whole, at every version,
    /// with records of several sizes (none, short ones copied, long ones on both sides of the
    /// varint length's byte boundaries passed through), aborted transactions, and short
    /// records that hold a marker's bytes (then the response is encoded whole).
    #[test]
    fn a_fetch_response_in_parts_equals_the_whole_encoding() {
        use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, TopicName};
        let records = |len: usize, fill: u8| Bytes::from(vec![fill; len]);
        let stray = |i: u8| Bytes::from([&MARKER_TAG[..], &[0, i]].concat());
        for (case, short) in [("plain", records(100, 7)), ("marker 0's bytes in short records", stray(0)), ("marker 1's bytes in short records", stray(1))] {
            let partition = |i: i32, records: Option<Bytes>| {
                PartitionData::default()
                    .with_partition_index(i)
                    .with_high_watermark(1000 + i as i64)
                    .with_last_stable_offset(900)
                    .with_log_start_offset(3)
                    .with_aborted_transactions(Some(vec![AbortedTransaction::default().with_producer_id(kafka_protocol::messages::ProducerId(42)).with_first_offset(7)]))
                    .with_records(records)
            };
            let long = [records(4096, 1), records(16_383, 2), records(16_384, 3), records(1 << 20, 4)];
            for version in 4..=17 {
                // Each version carries the fields it has: a session from 7, topic ids from 13.
                let topic = |name: &'static str, partitions| {
                    let t = FetchableTopicResponse::default().with_partitions(partitions);
                    if version >= 13 { t.with_topic_id(uuid::Uuid::from_u128(9)) } else { t.with_topic(TopicName(StrBytes::from_static_str(name))) }
                };
                let response = FetchResponse::default().with_session_id(if version >= 7 { 5 } else { 0 }).with_responses(vec![
                    topic("orders", vec![partition(0, Some(long[0].clone())), partition(1, None), partition(2, Some(short.clone())), partition(3, Some(long[1].clone()))]),
                    topic("payments", vec![partition(0, Some(Bytes::new())), partition(1, Some(long[2].clone())), partition(2, Some(long[3].clone()))]),
                ]);
                let whole = encode_response(11, ApiKey::Fetch, version, &ResponseKind::Fetch(response.clone())).expect("encode");
                let parts = encode_fetch_response(11, version, &response).expect("encode in parts");
                assert_eq!(parts.concat(), whole[..], "{case}, v{version}");
                let passed = long.iter().filter(|l| parts.iter().any(|p| p.as_ptr() == l.as_ptr())).count();
                let want = if case == "plain" { 4 } else { 0 };
                assert_eq!(passed, want, "{case}, v{version}: records passed through, not copied");
            }
        }
    }

    #[test]
    fn a_produce_request_in_parts_equals_kafkas_encoding() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
        let client_id = StrBytes::from_static_str("tern-test");
        for version in 3..=11 {
            for txn in [None, Some("tern.a.b.orders.3")] {
                for len in [0usize, 1, 126, 127, 128, 16_383, 16_384, 1 << 20] {
                    let body = Bytes::from((0..len).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
                    let head = Bytes::from_static(b"a batch header");
                    let first = [head.clone(), body.clone()];
                    let second = [body.slice(..len / 2)];
                    let topics = [
                        ("remote.orders", vec![ProducePartition { index: 3, records: &first }, ProducePartition { index: 0, records: &second }]),
                        ("t", vec![ProducePartition { index: 2, records: &[] }]),
                    ];
                    let parts = encode_produce_request(version, 77, "tern-test", txn, -1, 30_000, &topics).expect("encode");
                    if len > 0 {
                        assert!(parts.iter().any(|p| p.as_ptr() == body.as_ptr()), "records are passed through, not copied");
                    }
                    let partition = |i, r: Vec<u8>| PartitionProduceData::default().with_index(i).with_records(Some(Bytes::from(r)));
                    let whole = ProduceRequest::default()
                        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_static_str(t))))
                        .with_acks(-1)
                        .with_timeout_ms(30_000)
                        .with_topic_data(vec![
                            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("remote.orders"))).with_partition_data(vec![
                                partition(3, [&head[..], &body[..]].concat()),
                                partition(0, body[..len / 2].to_vec()),
                            ]),
                            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partition_data(vec![partition(2, Vec::new())]),
                        ]);
                    let expected = encode_typed_request(&whole, version, 77, &client_id).expect("encode");
                    let written: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                    assert!(written == expected[..], "v{version}, transactional id {txn:?}, {len} bytes of records");
                }
            }
        }
        assert!(encode_produce_request(12, 1, "c", None, 1, 1, &[]).is_err(), "versions past 11 are not written");
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
