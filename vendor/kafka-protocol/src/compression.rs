//! Provides compression utilities for encoding records.
//!
//! This module has implementations of gzip, Snappy, as well as a noop compression format that
//! allows encoding and decoding records into a [`Record`](crate::records::Record).

use crate::protocol::buf::{ByteBuf, ByteBufMut};
use anyhow::Result;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
mod none;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
pub use gzip::Gzip;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use none::None;
#[cfg(feature = "snappy")]
pub use snappy::Snappy;
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

/// Most bytes a compressed record batch may decompress to. A crafted batch of a few kilobytes
/// can expand to gigabytes; past this bound decompression stops with an error rather than
/// allocating. Producers close batches long before it (Kafka's `batch.size` is 16 KiB and
/// `max.request.size` 1 MiB, so 64 MiB is a compression ratio of 64 at the largest request).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Reads `reader` to its end, failing once more than [`MAX_DECOMPRESSED_BYTES`] came out.
#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_bounded(reader: impl std::io::Read, codec: &str) -> Result<bytes::Bytes> {
    use std::io::Read as _;
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("Failed to decompress {codec}: {e}"))?;
    too_large(out.len(), codec)?;
    Ok(out.into())
}

/// Refuses a decompressed size past [`MAX_DECOMPRESSED_BYTES`].
fn too_large(len: usize, codec: &str) -> Result<()> {
    if len > MAX_DECOMPRESSED_BYTES {
        anyhow::bail!("{codec} batch decompresses to more than {} MiB", MAX_DECOMPRESSED_BYTES >> 20);
    }
    Ok(())
}

/// A trait for record compression algorithms.
pub trait Compressor<B: ByteBufMut> {
    /// Target buffer type for compression.
    type BufMut: ByteBufMut;
    /// Compresses into provided [`ByteBufMut`], with records encoded by `F` into `R`.
    fn compress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::BufMut) -> Result<R>;
}

/// A trait for record decompression algorithms.
pub trait Decompressor<B: ByteBuf> {
    /// Target buffer type for decompression.
    type Buf: ByteBuf;
    /// Decompress records from `B` mapped using `F` into `R`.
    fn decompress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::Buf) -> Result<R>;
}
