//! Kafka's record formats of the `__consumer_offsets` topic, so that the topic is readable by
//! Kafka tooling (`kafka-console-consumer --formatter ...OffsetsMessageFormatter`, MirrorMaker's
//! checkpoint logic, lag exporters reading it directly).
//!
//! Every key and value starts with an int16 schema version. Keys: `OffsetCommitKey` (versions 0
//! and 1: group, topic, partition) and `GroupMetadataKey` (version 2: group); versions 3 and up
//! belong to the KIP-848 consumer-group records, which this coordinator does not write and skips.
//! Values are written as Kafka 4.0 writes them: `OffsetCommitValue` v3 (v1 when the commit carries
//! an expiry time) and `GroupMetadataValue` v3. Every version up to the flexible v4 is read.
//! A record without value is a tombstone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct RecordError {
    what: &'static str,
    reason: String,
}

fn malformed(what: &'static str, e: impl std::fmt::Display) -> RecordError {
    RecordError { what, reason: e.to_string() }
}

type Result<T> = std::result::Result<T, RecordError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the committer did not know the leader epoch.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Set by OffsetCommit v2-v4 requests that carried a retention time.
    pub expire_timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut w = Writer::new(OFFSET_KEY_VERSION);
    w.string(group);
    w.string(topic);
    w.i32(partition);
    w.finish()
}

pub fn group_key(group: &str) -> Bytes {
    let mut w = Writer::new(GROUP_KEY_VERSION);
    w.string(group);
    w.finish()
}

/// `None` for record types this coordinator does not keep (KIP-848 consumer groups, share
/// groups), which a log written by a newer Kafka may hold.
pub fn decode_key(bytes: &Bytes) -> Result<Option<RecordKey>> {
    let mut r = Reader::new(bytes.clone(), "record key")?;
    match r.version {
        0 | 1 => Ok(Some(RecordKey::Offset { group: r.string()?, topic: r.string()?, partition: r.i32()? })),
        2 => Ok(Some(RecordKey::Group { group: r.string()? })),
        _ => Ok(None),
    }
}

pub fn offset_value(v: &OffsetValue) -> Bytes {
    match v.expire_timestamp {
        Some(expire) => {
            let mut w = Writer::new(1);
            w.i64(v.offset);
            w.string(&v.metadata);
            w.i64(v.commit_timestamp);
            w.i64(expire);
            w.finish()
        }
        None => {
            let mut w = Writer::new(3);
            w.i64(v.offset);
            w.i32(v.leader_epoch);
            w.string(&v.metadata);
            w.i64(v.commit_timestamp);
            w.finish()
        }
    }
}

pub fn decode_offset_value(bytes: &Bytes) -> Result<OffsetValue> {
    let mut r = Reader::new(bytes.clone(), "offset commit value")?;
    if r.version > 4 {
        return Err(malformed(r.what, format!("unknown version {}", r.version)));
    }
    let offset = r.i64()?;
    let leader_epoch = if r.version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if r.version == 1 { Some(r.i64()?) } else { None };
    r.tagged_fields()?;
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

pub fn group_value(v: &GroupValue) -> Bytes {
    let mut w = Writer::new(3);
    w.string(&v.protocol_type);
    w.i32(v.generation);
    w.nullable_string(v.protocol.as_deref());
    w.nullable_string(v.leader.as_deref());
    w.i64(v.current_state_timestamp);
    w.i32(v.members.len() as i32);
    for m in &v.members {
        w.string(&m.member_id);
        w.nullable_string(m.group_instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout);
        w.i32(m.session_timeout);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.finish()
}

pub fn decode_group_value(bytes: &Bytes) -> Result<GroupValue> {
    let mut r = Reader::new(bytes.clone(), "group metadata value")?;
    if r.version > 4 {
        return Err(malformed(r.what, format!("unknown version {}", r.version)));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if r.version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if r.version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_before_rebalance = r.version == 0;
        let (rebalance_timeout, session_timeout) = if session_before_rebalance {
            let s = r.i32()?;
            (s, s)
        } else {
            (r.i32()?, r.i32()?)
        };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

/// Non-flexible writer: every version written here predates Kafka's flexible record versions.
struct Writer(BytesMut);

impl Writer {
    fn new(version: i16) -> Writer {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(version);
        Writer(buf)
    }
    fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }
    fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }
    fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            // Kafka strings are at most i16::MAX bytes; group ids, topic names, member and client
            // ids are bounded far below that by the request decoder, so a longer one is cut
            // rather than written with a wrapped length.
            Some(s) => {
                let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
                self.0.put_i16(b.len() as i16);
                self.0.put_slice(b);
            }
            None => self.0.put_i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.put_i32(b.len() as i32);
        self.0.put_slice(b);
    }
    fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

/// Reads one key or value, every length checked against what is left; `flexible` (version 4
/// values) switches to compact encodings and tagged fields.
struct Reader {
    buf: Bytes,
    version: i16,
    flexible: bool,
    what: &'static str,
}

impl Reader {
    fn new(buf: Bytes, what: &'static str) -> Result<Reader> {
        let mut r = Reader { buf, version: 0, flexible: false, what };
        r.version = r.i16()?;
        if r.version < 0 {
            return Err(malformed(what, format!("negative version {}", r.version)));
        }
        // Keys are never flexible; values become flexible at version 4.
        r.flexible = what != "record key" && r.version >= 4;
        Ok(r)
    }
    fn take(&mut self, n: usize) -> Result<Bytes> {
        if n > self.buf.len() {
            return Err(malformed(self.what, format!("{n} bytes needed, {} left", self.buf.len())));
        }
        Ok(self.buf.split_to(n))
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(self.take(2)?.get_i16())
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(self.take(4)?.get_i32())
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(self.take(8)?.get_i64())
    }
    fn varint(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(self.what, "varint longer than 5 bytes"))
    }
    /// Length of a string, bytes or array; `None` for null.
    fn length(&mut self, compact: bool, wide: bool) -> Result<Option<usize>> {
        let n: i64 = if compact {
            i64::from(self.varint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if n < 0 {
            return Ok(None);
        }
        // Every element takes at least one byte, so a count beyond the rest is a lie.
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(Some(n)),
            _ => Err(malformed(self.what, format!("length {n} with {} bytes left", self.buf.len()))),
        }
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        let Some(n) = self.length(self.flexible, false)? else { return Ok(None) };
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map(Some).map_err(|e| malformed(self.what, e))
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?.ok_or_else(|| malformed(self.what, "null where a string is required"))
    }
    fn bytes(&mut self) -> Result<Bytes> {
        match self.length(self.flexible, true)? {
            Some(n) => self.take(n),
            None => Ok(Bytes::new()),
        }
    }
    fn array_len(&mut self) -> Result<usize> {
        Ok(self.length(self.flexible, true)?.unwrap_or(0))
    }
    /// Skips the tagged fields of a flexible struct (none are defined that this reader needs).
    fn tagged_fields(&mut self) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.varint()?;
        for _ in 0..count {
            let _tag = self.varint()?;
            let size = self.varint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes laid out by hand from Kafka's OffsetCommitKey/Value and GroupMetadataKey/Value
    /// schemas, so the encoder is checked against the format, not against itself.
    #[test]
    fn offset_records_match_kafkas_layout() {
        let key = offset_key("g", "t", 7);
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        let value = offset_value(&OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        });
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'm']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(&value[..], &want[..]);
        assert_eq!(decode_key(&key).expect("key"), Some(RecordKey::Offset { group: "g".into(), topic: "t".into(), partition: 7 }));
        let back = decode_offset_value(&value).expect("value");
        assert_eq!((back.offset, back.leader_epoch, back.metadata.as_str(), back.commit_timestamp), (42, 3, "m", 1000));
    }

    #[test]
    fn expiring_commits_use_value_version_1() {
        let v = OffsetValue { offset: 5, leader_epoch: -1, metadata: String::new(), commit_timestamp: 10, expire_timestamp: Some(99) };
        let bytes = offset_value(&v);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(bytes.len(), 2 + 8 + 2 + 8 + 8);
        assert_eq!(decode_offset_value(&bytes).expect("value"), v);
    }

    #[test]
    fn group_records_round_trip_and_match_kafkas_layout() {
        assert_eq!(&group_key("grp")[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = group_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        // protocol_type "consumer": int16 length then the bytes.
        assert_eq!(&bytes[2..12], b"\x00\x08consumer");
        assert_eq!(decode_group_value(&bytes).expect("value"), v);
        assert_eq!(decode_key(&group_key("grp")).expect("key"), Some(RecordKey::Group { group: "grp".into() }));
    }

    #[test]
    fn older_and_flexible_versions_are_read() {
        // GroupMetadataValue v0: no rebalance timeout, no state timestamp, no instance id.
        let mut b = BytesMut::new();
        b.put_i16(0);
        for s in ["consumer"] {
            b.put_i16(s.len() as i16);
            b.put_slice(s.as_bytes());
        }
        b.put_i32(1);
        b.put_i16(-1);
        b.put_i16(-1);
        b.put_i32(0);
        let v = decode_group_value(&b.freeze()).expect("v0");
        assert_eq!((v.generation, v.protocol, v.members.len()), (1, None, 0));

        // OffsetCommitValue v4 (flexible): compact string and an empty tagged-field section.
        let mut b = BytesMut::new();
        b.put_i16(4);
        b.put_i64(9);
        b.put_i32(2);
        b.put_u8(2);
        b.put_u8(b'x');
        b.put_i64(77);
        b.put_u8(0);
        let v = decode_offset_value(&b.freeze()).expect("v4");
        assert_eq!((v.offset, v.leader_epoch, v.metadata.as_str(), v.commit_timestamp), (9, 2, "x", 77));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [&b""[..], &[0], &[0, 1, 0, 9, b'g'], &[0, 3, 0, 0], &[0xff, 0xff], &[0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]] {
            let b = Bytes::copy_from_slice(bad);
            let _ = decode_key(&b);
            let _ = decode_offset_value(&b);
            let _ = decode_group_value(&b);
        }
        assert!(decode_offset_value(&Bytes::from_static(&[0, 3, 0])).is_err());
        assert_eq!(decode_key(&Bytes::from_static(&[0, 5, 0, 0])).expect("newer record type"), None);
    }
}
