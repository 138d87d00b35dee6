//! MirrorMaker 2's internal record formats, byte for byte, so MM2 tooling
//! (RemoteClusterUtils.translateOffsets, the MM2 formatters) reads what Tern writes.
//!
//! Kafka's struct encoding: big-endian integers, strings as INT16 length + UTF-8, no tags.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

pub const HEARTBEATS_TOPIC: &str = "heartbeats";

pub fn offset_syncs_topic(target: &str) -> String {
    format!("mm2-offset-syncs.{target}.internal")
}

pub fn checkpoints_topic(source: &str) -> String {
    format!("{source}.checkpoints.internal")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub source_cluster: String,
    pub target_cluster: String,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSync {
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub group: String,
    /// The downstream (remote) topic name.
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
    pub metadata: String,
}

fn put_str(buf: &mut BytesMut, s: &str) {
    // Kafka strings carry an INT16 length; longer names are impossible in Kafka (249 chars).
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    buf.put_i16(bytes.len() as i16);
    buf.put_slice(bytes);
}

fn get_str(buf: &mut Bytes, what: &str) -> Result<String> {
    let len = get_i16(buf, what)?;
    if len < 0 || buf.remaining() < len as usize {
        return Err(Error::Malformed(format!("{what}: bad string length {len}")));
    }
    String::from_utf8(buf.split_to(len as usize).to_vec()).map_err(|_| Error::Malformed(format!("{what}: not UTF-8")))
}

macro_rules! getter {
    ($name:ident, $t:ty, $get:ident) => {
        fn $name(buf: &mut Bytes, what: &str) -> Result<$t> {
            if buf.remaining() < std::mem::size_of::<$t>() {
                return Err(Error::Malformed(format!("{what}: truncated")));
            }
            Ok(buf.$get())
        }
    };
}
getter!(get_i16, i16, get_i16);
getter!(get_i32, i32, get_i32);
getter!(get_i64, i64, get_i64);

impl Heartbeat {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.source_cluster);
        put_str(&mut b, &self.target_cluster);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(self.timestamp);
        b.freeze()
    }
    pub fn decode(mut key: Bytes, mut value: Bytes) -> Result<Heartbeat> {
        let source_cluster = get_str(&mut key, "heartbeat key")?;
        let target_cluster = get_str(&mut key, "heartbeat key")?;
        let _version = get_i16(&mut value, "heartbeat value")?;
        let timestamp = get_i64(&mut value, "heartbeat value")?;
        Ok(Heartbeat { source_cluster, target_cluster, timestamp })
    }
}

impl OffsetSync {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.topic);
        b.put_i32(self.partition);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i64(self.upstream_offset);
        b.put_i64(self.downstream_offset);
        b.freeze()
    }
    pub fn decode(mut key: Bytes, mut value: Bytes) -> Result<OffsetSync> {
        Ok(OffsetSync {
            topic: get_str(&mut key, "offset sync key")?,
            partition: get_i32(&mut key, "offset sync key")?,
            upstream_offset: get_i64(&mut value, "offset sync value")?,
            downstream_offset: get_i64(&mut value, "offset sync value")?,
        })
    }
}

impl Checkpoint {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.group);
        put_str(&mut b, &self.topic);
        b.put_i32(self.partition);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(self.upstream_offset);
        b.put_i64(self.downstream_offset);
        put_str(&mut b, &self.metadata);
        b.freeze()
    }
    pub fn decode(mut key: Bytes, mut value: Bytes) -> Result<Checkpoint> {
        let group = get_str(&mut key, "checkpoint key")?;
        let topic = get_str(&mut key, "checkpoint key")?;
        let partition = get_i32(&mut key, "checkpoint key")?;
        let version = get_i16(&mut value, "checkpoint value")?;
        if version != 0 {
            return Err(Error::Malformed(format!("checkpoint value version {version} (only 0 exists)")));
        }
        Ok(Checkpoint {
            group,
            topic,
            partition,
            upstream_offset: get_i64(&mut value, "checkpoint value")?,
            downstream_offset: get_i64(&mut value, "checkpoint value")?,
            metadata: get_str(&mut value, "checkpoint value")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures laid out by hand from MM2's schemas (connect/mirror-client Heartbeat,
    // OffsetSync and Checkpoint), not produced by this module.
    const HEARTBEAT_KEY_V0: &[u8] = &[0, 7, b'u', b's', b'-', b'e', b'a', b's', b't', 0, 7, b'e', b'u', b'-', b'w', b'e', b's', b't'];
    const HEARTBEAT_VALUE_V0: &[u8] = &[0, 0, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0x00];
    const OFFSET_SYNC_KEY: &[u8] = &[0x00, 0x01, 0x74, 0x00, 0x00, 0x00, 0x00];
    const OFFSET_SYNC_VALUE: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 42];
    const CHECKPOINT_KEY: &[u8] = &[0, 1, b'g', 0, 3, b'a', b'.', b't', 0, 0, 0, 2];
    const CHECKPOINT_VALUE_V0: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, b'm', b'd'];

    #[test]
    fn heartbeat_fixture() {
        let hb = Heartbeat::decode(Bytes::from_static(HEARTBEAT_KEY_V0), Bytes::from_static(HEARTBEAT_VALUE_V0)).expect("decode");
        assert_eq!(hb, Heartbeat { source_cluster: "us-east".into(), target_cluster: "eu-west".into(), timestamp: 1_700_000_000_000 });
        assert_eq!(&hb.key()[..], HEARTBEAT_KEY_V0);
        assert_eq!(&hb.value()[..], HEARTBEAT_VALUE_V0);
    }

    #[test]
    fn offset_sync_fixture() {
        let s = OffsetSync::decode(Bytes::from_static(OFFSET_SYNC_KEY), Bytes::from_static(OFFSET_SYNC_VALUE)).expect("decode");
        assert_eq!(s, OffsetSync { topic: "t".into(), partition: 0, upstream_offset: 100, downstream_offset: 42 });
        assert_eq!(&s.key()[..], OFFSET_SYNC_KEY);
        assert_eq!(&s.value()[..], OFFSET_SYNC_VALUE);
    }

    #[test]
    fn checkpoint_fixture() {
        let c = Checkpoint::decode(Bytes::from_static(CHECKPOINT_KEY), Bytes::from_static(CHECKPOINT_VALUE_V0)).expect("decode");
        assert_eq!(c, Checkpoint { group: "g".into(), topic: "a.t".into(), partition: 2, upstream_offset: 5, downstream_offset: 3, metadata: "md".into() });
        assert_eq!(&c.key()[..], CHECKPOINT_KEY);
        assert_eq!(&c.value()[..], CHECKPOINT_VALUE_V0);
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Checkpoint::decode(Bytes::from_static(&CHECKPOINT_KEY[..5]), Bytes::from_static(CHECKPOINT_VALUE_V0)).is_err());
        assert!(Checkpoint::decode(Bytes::from_static(CHECKPOINT_KEY), Bytes::from_static(&[0, 1])).is_err());
        assert!(Heartbeat::decode(Bytes::from_static(&[0, 9, b'x']), Bytes::new()).is_err());
    }
}
