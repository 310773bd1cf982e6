//! The generated `switchboard.v1` contract, and the descriptor set reflection serves.

#![allow(clippy::all, clippy::pedantic)]

use std::fmt;
use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

tonic::include_proto!("switchboard.v1");

/// Starting size of each call's encode and decode buffers. Every message of the contract
/// but the largest list answers fits; a buffer grows when one does not. tonic's default
/// (8 KiB each way) made every idle desktop's `Connect` stream hold 16 KiB it never used.
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

/// Every `switchboard.v1` file with its comments, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("switchboard_descriptor");

// Messages that carry a password are built without a derived Debug (see build.rs), so that no
// `{:?}` anywhere can print the secret.

impl fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("id", &self.id)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.agent_id)
            .field("display_name", &self.display_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for ConnectAgentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectAgentRequest")
            .field("agent_id", &self.agent_id)
            .field("password", &"<redacted>")
            .field("extension", &self.extension)
            .field("destination", &self.destination)
            .finish()
    }
}

impl fmt::Debug for LoginAgentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAgentRequest")
            .field("agent_id", &self.agent_id)
            .field("password", &"<redacted>")
            .field("mrd", &self.mrd)
            .finish()
    }
}
