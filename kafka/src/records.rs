//! Building plain record batches (no producer id, CreateTime) from keys, values, headers and
//! timestamps: what the mirror's internal topics, the demo's load and tests need.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainRecord {
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: i64,
}

impl From<&kafka_protocol::records::Record> for PlainRecord {
    /// A fetched record's content, to be written again elsewhere.
    fn from(r: &kafka_protocol::records::Record) -> PlainRecord {
        PlainRecord {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            timestamp: r.timestamp,
        }
    }
}

impl PlainRecord {
    pub fn new(key: impl Into<Bytes>, value: Option<Bytes>, timestamp: i64) -> PlainRecord {
        PlainRecord { key: Some(key.into()), value, headers: Vec::new(), timestamp }
    }
}

/// One v2 batch holding `records` in order, base offset 0, base sequence -1.
pub fn encode_batch(records: &[PlainRecord], compression: Compression) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays constant;
            // the batch then carries base sequence -1 (no idempotent producer).
            sequence: i as i32 - 1,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.iter().map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone())).collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{verify_crc, BatchHeader};

    /// An LZ4 batch's frame carries neither block nor content checksums, as Kafka's producer
    /// writes it, and reads back.
    #[test]
    fn lz4_frames_are_written_as_kafka_writes_them() {
        let records: Vec<PlainRecord> = (0..50).map(|i| PlainRecord::new(format!("key-{i}"), Some(Bytes::from(format!("value-{i}"))), 1_750_000_000_000 + i)).collect();
        let batch = encode_batch(&records, Compression::Lz4).expect("encode");
        // The records of a v2 batch start 61 bytes in: the frame's magic, then its FLG byte.
        assert_eq!(batch.get(61..65), Some(&[0x04, 0x22, 0x4d, 0x18][..]), "an LZ4 frame");
        // Version 01, independent blocks; no block checksum (bit 4), no content size (bit 3),
        // no content checksum (bit 2).
        assert_eq!(batch[65], 0x60, "FLG {:#04x}", batch[65]);
        let mut buf = batch.clone();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).expect("decode");
        let values: Vec<Option<Bytes>> = sets.into_iter().flat_map(|s| s.records).map(|r| r.value).collect();
        assert_eq!(values, records.iter().map(|r| r.value.clone()).collect::<Vec<_>>());
    }

    /// Every codec stops at the decompression bound: a batch body of zeros a little past it,
    /// compressed, is refused with the bound named, and one just under it decompresses.
    #[test]
    fn decompression_stops_at_the_bound() {
        use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd, MAX_DECOMPRESSED_BYTES};
        use bytes::BytesMut;
        fn compress<C: Compressor<BytesMut, BufMut = BytesMut>>(len: usize) -> Bytes {
            let mut out = BytesMut::new();
            C::compress(&mut out, |b| {
                b.resize(len, 0);
                Ok(())
            })
            .expect("compress");
            out.freeze()
        }
        fn decompress<D: Decompressor<Bytes, Buf = Bytes>>(mut data: Bytes) -> Result<usize, String> {
            D::decompress(&mut data, |b| Ok(b.len())).map_err(|e| format!("{e:#}"))
        }
        let (over, under) = (MAX_DECOMPRESSED_BYTES + 1, MAX_DECOMPRESSED_BYTES - 4096);
        let started = std::time::Instant::now();
        let results = [
            ("gzip", decompress::<Gzip>(compress::<Gzip>(over)), decompress::<Gzip>(compress::<Gzip>(under))),
            ("lz4", decompress::<Lz4>(compress::<Lz4>(over)), decompress::<Lz4>(compress::<Lz4>(under))),
            ("snappy", decompress::<Snappy>(compress::<Snappy>(over)), decompress::<Snappy>(compress::<Snappy>(under))),
            ("zstd", decompress::<Zstd>(compress::<Zstd>(over)), decompress::<Zstd>(compress::<Zstd>(under))),
        ];
        eprintln!("took {:?}", started.elapsed());
        for (codec, over, under) in results {
            let refused = over.expect_err(codec);
            assert!(refused.contains(&format!("{codec} batch decompresses to more than 64 MiB")), "{codec}: {refused}");
            assert_eq!(under, Ok(MAX_DECOMPRESSED_BYTES - 4096), "{codec}");
        }
    }

    #[test]
    fn one_batch_with_everything_kept() {
        let mut r = PlainRecord::new("k", Some(Bytes::from_static(b"v")), 1_700_000_000_000);
        r.headers.push(("h".into(), None));
        r.headers.push(("h".into(), Some(Bytes::from_static(b"again"))));
        let b = encode_batch(&[r.clone(), PlainRecord::new("k2", None, 1_700_000_000_001)], Compression::Zstd).expect("encode");
        verify_crc(&b).expect("crc");
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!((h.record_count, h.base_sequence, h.producer_id), (2, -1, -1));
        let mut bytes = b.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).expect("decode");
        // A repeated key stays two headers, in order.
        let headers: Vec<_> = set.records[0].headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert_eq!(headers, vec![("h", None), ("h", Some(Bytes::from_static(b"again")))]);
        assert_eq!(set.records[1].value, None);
    }
}
