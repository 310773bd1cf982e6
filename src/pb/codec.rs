//! The codec of every generated service and client, set in build.rs.

// `pb` allows every clippy lint for the generated code; this hand-written module opts back in.
#![warn(clippy::all)]

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Starting size of each call's encode and decode buffers. A desktop's requests and events
/// are a few hundred bytes; a buffer grows for a message that does not fit (a long list, say).
/// tonic's default (8 KiB each way) made every idle desktop's `Connect` stream hold 16 KiB it
/// never used.
const CODEC_BUFFER_BYTES: usize = 1024;
/// tonic's default: an encoder yields to the connection once it has buffered this much.
const CODEC_YIELD_THRESHOLD: usize = 32 * 1024;

/// The codec of every generated service and client (set in build.rs): prost, with
/// smaller starting buffers.
#[derive(Debug, Clone)]
pub struct CompactCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CompactCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CompactCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(compact_buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(compact_buffers())
    }
}

fn compact_buffers() -> BufferSettings {
    BufferSettings::new(CODEC_BUFFER_BYTES, CODEC_YIELD_THRESHOLD)
}
