//! Record-level view of a stored batch: the offset and timestamp of each record (ListOffsets
//! by timestamp), and each record's parts (key checks of compacted topics, the cleaner).
//! Decompresses with kafka-protocol's codecs; a batch whose header claims absurd counts costs
//! no more than its data.
//!
//! Records are parsed into borrowed slices and re-encoded byte for byte (headers are copied
//! raw), rather than through kafka-protocol's `Record`, whose header map would merge
//! duplicate header keys.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use tern_kafka::batch::{BatchHeader, Codec, HEADER_LEN};

/// `(offset, timestamp)` of every record of `batch` (one complete stored batch), in order.
/// LogAppendTime batches give every record the batch's max timestamp, as Kafka does.
pub(crate) fn record_times(batch: &[u8], h: &BatchHeader) -> Result<Vec<(i64, i64)>, String> {
    let body = batch
        .get(HEADER_LEN..)
        .ok_or("batch shorter than its header")?;
    let data = decompress(h.codec(), Bytes::copy_from_slice(body))?;
    let mut out = Vec::new();
    let mut p = 0usize;
    let mut n = 0i64;
    while n < i64::from(h.record_count) && p < data.len() {
        let len = read_varint(&data, &mut p)?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        let end = p
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or("record runs past the batch")?;
        let mut q = p + 1; // attributes
        if q > end {
            return Err("empty record".into());
        }
        let ts_delta = read_varlong(&data[..end], &mut q)?;
        let offset_delta = read_varint(&data[..end], &mut q)?;
        let ts = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(ts_delta)
        };
        out.push((h.base_offset.saturating_add(i64::from(offset_delta)), ts));
        p = end;
        n += 1;
    }
    Ok(out)
}

/// One record of a decompressed batch body, borrowing from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The header count and headers exactly as stored.
    pub headers: &'a [u8],
}

/// The decompressed records section of one complete stored batch.
pub(crate) fn batch_body(batch: &[u8], h: &BatchHeader) -> Result<Bytes, String> {
    let body = batch
        .get(HEADER_LEN..)
        .ok_or("batch shorter than its header")?;
    decompress(h.codec(), Bytes::copy_from_slice(body))
}

/// Parses `count` records from a decompressed body.
pub(crate) fn parse_records(data: &[u8], count: i32) -> Result<Vec<RecordView<'_>>, String> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while out.len() < count.max(0) as usize {
        if p >= data.len() {
            return Err(format!("batch holds {} of its {count} records", out.len()));
        }
        let len = read_varint(data, &mut p)?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        let end = p
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or("record runs past the batch")?;
        let rec = &data[..end];
        let attributes = *rec.get(p).ok_or("empty record")?;
        let mut q = p + 1;
        let timestamp_delta = read_varlong(rec, &mut q)?;
        let offset_delta = read_varint(rec, &mut q)?;
        let key = read_bytes(rec, &mut q)?;
        let value = read_bytes(rec, &mut q)?;
        out.push(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers: &rec[q..],
        });
        p = end;
    }
    Ok(out)
}

/// A varint-length-prefixed byte string; length -1 is null.
fn read_bytes<'a>(b: &'a [u8], p: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let len = read_varint(b, p)?;
    if len < 0 {
        return Ok(None);
    }
    let end = p
        .checked_add(len as usize)
        .filter(|&e| e <= b.len())
        .ok_or("record field runs past the record")?;
    let s = &b[*p..end];
    *p = end;
    Ok(Some(s))
}

/// Appends `r` with a new timestamp delta (the cleaner may move a batch's base timestamp).
pub(crate) fn encode_record(out: &mut Vec<u8>, r: &RecordView<'_>, timestamp_delta: i64) {
    let mut body = Vec::with_capacity(
        16 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + r.headers.len(),
    );
    body.push(r.attributes);
    write_varlong(&mut body, timestamp_delta);
    write_varlong(&mut body, i64::from(r.offset_delta));
    for field in [r.key, r.value] {
        match field {
            Some(b) => {
                write_varlong(&mut body, b.len() as i64);
                body.extend_from_slice(b);
            }
            None => write_varlong(&mut body, -1),
        }
    }
    body.extend_from_slice(r.headers);
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Compresses a records section with `codec` (kafka-protocol's codecs, as producers use).
pub(crate) fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(data);
        Ok(())
    };
    let r = match codec {
        Codec::None => return Ok(data.to_vec()),
        Codec::Gzip => <Gzip as Compressor<BytesMut>>::compress(&mut out, fill),
        Codec::Snappy => <Snappy as Compressor<BytesMut>>::compress(&mut out, fill),
        Codec::Lz4 => <Lz4 as Compressor<BytesMut>>::compress(&mut out, fill),
        Codec::Zstd => <Zstd as Compressor<BytesMut>>::compress(&mut out, fill),
        Codec::Unknown(c) => return Err(format!("unknown compression codec {c}")),
    };
    r.map_err(|e| format!("compression failed: {e:#}"))?;
    Ok(out.to_vec())
}

fn decompress(codec: Codec, mut data: Bytes) -> Result<Bytes, String> {
    let r = match codec {
        Codec::None => return Ok(data),
        Codec::Gzip => {
            <Gzip as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Snappy => {
            <Snappy as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Lz4 => {
            <Lz4 as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Zstd => {
            <Zstd as Decompressor<Bytes>>::decompress(&mut data, |b| Ok(std::mem::take(b)))
        }
        Codec::Unknown(c) => return Err(format!("unknown compression codec {c}")),
    };
    r.map_err(|e| format!("decompression failed: {e:#}"))
}

fn read_varlong(b: &[u8], p: &mut usize) -> Result<i64, String> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*p).ok_or("truncated varint")?;
        *p += 1;
        if shift == 63 && byte > 1 {
            return Err("varint too long".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    Err("varint too long".into())
}

pub(crate) fn read_varint(b: &[u8], p: &mut usize) -> Result<i32, String> {
    let v = read_varlong(b, p)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let enc = zigzag(v);
            let mut p = 0;
            assert_eq!(read_varlong(&enc, &mut p).expect("decode"), v);
            assert_eq!(p, enc.len());
        }
        let mut p = 0;
        assert!(read_varint(&zigzag(i64::from(i32::MAX) + 1), &mut p).is_err());
        let mut p = 0;
        assert!(read_varlong(&[0x80, 0x80], &mut p).is_err());
    }
}
