//! Whole gRPC messages counted in a body's bytes, for the metrics layer's message counts.

/// Counts whole gRPC messages in a body's bytes: each is a 5-byte prefix (a flag and a
/// big-endian length) and that many bytes, however HTTP/2 cuts them into frames.
#[derive(Default)]
pub(super) struct Frames {
    /// Prefix bytes read of the current message (0 to 4).
    prefix: u8,
    length: u32,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl Frames {
    /// Reads `data`; answers how many messages it completed.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut complete = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[take..];
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    complete += 1;
                }
                continue;
            }
            let byte = data[0];
            data = &data[1..];
            if self.prefix > 0 {
                self.length = self.length << 8 | u32::from(byte);
            }
            self.prefix += 1;
            if self.prefix == 5 {
                self.remaining = u64::from(self.length);
                if self.remaining == 0 {
                    complete += 1;
                }
                self.prefix = 0;
                self.length = 0;
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len));
        bytes
    }

    #[test]
    fn frames_count_messages_however_they_are_cut() {
        let mut stream = message(300);
        stream.extend(message(0));
        stream.extend(message(1));
        for cut in [1, 2, 3, 5, 7, 64, 1000] {
            let mut frames = Frames::default();
            let counted: u64 = stream.chunks(cut).map(|chunk| frames.feed(chunk)).sum();
            assert_eq!(counted, 3, "cut into {cut}-byte frames");
        }
    }
}
