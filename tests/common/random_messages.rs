//! Protobuf messages made up from a descriptor set, for black-box tests that throw many
//! requests at every method without writing one per type: a seeded PRNG, the methods and
//! message types of the descriptor sets, and a wire encoder that fills any message type with
//! pseudo-random field values (or with one huge string, one huge repeated field, one string
//! that is not UTF-8, one field with the wrong wire type).
//!
//! Only prost's wire helpers are used, so a message is encoded exactly as the bytes say, not
//! as a generated type would allow.

use std::collections::HashMap;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// splitmix64: small, fast and the same on every platform, so a seed names one run.
pub struct Rng(u64);

impl Rng {
    /// A seed from text (FNV-1a), so each method's cases stay the same when others change.
    pub fn seeded_by(text: &str, salt: u64) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(hash)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One method of the descriptor sets.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    /// The request type's full name, `.package.Message`.
    pub input: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

/// Every message type of some descriptor sets, by full name (`.package.Message`).
pub struct Schema {
    messages: HashMap<String, DescriptorProto>,
}

impl Schema {
    /// The message types and methods of `sets` (each an encoded `FileDescriptorSet`); the
    /// methods sorted by path.
    pub fn read(sets: &[&[u8]]) -> (Self, Vec<Method>) {
        let mut messages = HashMap::new();
        let mut methods = Vec::new();
        for bytes in sets {
            let set = FileDescriptorSet::decode(*bytes).expect("a descriptor set");
            for file in set.file {
                let package = file.package().to_owned();
                for message in &file.message_type {
                    index(&format!(".{package}"), message, &mut messages);
                }
                for service in &file.service {
                    for method in &service.method {
                        methods.push(Method {
                            path: format!("/{package}.{}/{}", service.name(), method.name()),
                            input: method.input_type().to_owned(),
                            client_streaming: method.client_streaming(),
                            server_streaming: method.server_streaming(),
                        });
                    }
                }
            }
        }
        methods.sort_by(|a, b| a.path.cmp(&b.path));
        methods.dedup_by(|a, b| a.path == b.path);
        (Self { messages }, methods)
    }

    fn message(&self, name: &str) -> &DescriptorProto {
        self.messages
            .get(name)
            .unwrap_or_else(|| panic!("no message type {name} in the descriptor sets"))
    }
}

fn index(scope: &str, message: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        index(&name, nested, into);
    }
    into.insert(name, message.clone());
}

/// What one generated message carries besides ordinary random values. Each applies to the
/// first field that can take it, in a random field order, nested messages included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Twist {
    None,
    /// One string field of this many bytes.
    HugeString(usize),
    /// One repeated or map field with entries up to about this many bytes in all.
    HugeRepeated(usize),
    /// One string field whose bytes are not UTF-8: the message does not decode.
    BadUtf8,
    /// One known field sent with another wire type: the message does not decode.
    WrongWireType,
}

/// Makes messages of `schema`'s types from `rng`, picking strings from `strings` (ids the
/// server knows, so some requests get past "not found") or making them up.
pub struct Generator<'a> {
    schema: &'a Schema,
    rng: &'a mut Rng,
    strings: &'a [&'a str],
    twist: Twist,
    /// Counts the values of a huge repeated field, so that its strings and numbers (a map's
    /// keys among them) are all different.
    counter: Option<u64>,
}

/// Nested messages deeper than this are left out (some types nest themselves).
const MAX_DEPTH: usize = 5;

impl<'a> Generator<'a> {
    pub fn new(schema: &'a Schema, rng: &'a mut Rng, strings: &'a [&'a str]) -> Self {
        Self {
            schema,
            rng,
            strings,
            twist: Twist::None,
            counter: None,
        }
    }

    /// A message of type `name` (`.package.Message`); `None` when `twist` found no field to
    /// apply to.
    pub fn message(&mut self, name: &str, twist: Twist) -> Option<Vec<u8>> {
        self.twist = twist;
        let mut out = Vec::new();
        self.fill(name, 0, &mut out);
        (self.twist == Twist::None).then_some(out)
    }

    fn fill(&mut self, name: &str, depth: usize, out: &mut Vec<u8>) {
        let schema = self.schema;
        let message = schema.message(name);
        let map_entry = message
            .options
            .as_ref()
            .is_some_and(|options| options.map_entry());
        let mut fields: Vec<&FieldDescriptorProto> = message.field.iter().collect();
        if !map_entry {
            self.rng.shuffle(&mut fields);
        }
        for field in fields {
            if self.twisted(field, depth, out) {
                continue;
            }
            // While a twist waits for its field, every field is set, so it finds one.
            let set = map_entry || self.twist != Twist::None || self.rng.chance(60);
            let is_message = field.r#type() == Type::Message;
            if !set || (is_message && depth >= MAX_DEPTH) {
                continue;
            }
            let count = if field.label() == Label::Repeated {
                self.rng.below(4)
            } else {
                1
            };
            for _ in 0..count {
                self.value(field, depth, out);
            }
        }
    }

    /// Applies the waiting twist to `field` if it can take it.
    fn twisted(&mut self, field: &FieldDescriptorProto, depth: usize, out: &mut Vec<u8>) -> bool {
        let number = field.number() as u32;
        match self.twist {
            Twist::HugeString(len) if field.r#type() == Type::String => {
                let text = b"abcdefghijklmnopqrstuvwxyz".repeat(len / 26 + 1);
                length_delimited(number, &text[..len], out);
            }
            Twist::BadUtf8 if field.r#type() == Type::String => {
                length_delimited(number, &[b'o', b'k', 0xff, 0xfe, 0xc3], out);
            }
            Twist::WrongWireType => {
                // A varint where the field wants a length-delimited value, and the reverse.
                if wire_type(field.r#type()) == WireType::LengthDelimited {
                    encode_key(number, WireType::Varint, out);
                    encode_varint(7, out);
                } else {
                    length_delimited(number, b"not a number", out);
                }
            }
            Twist::HugeRepeated(budget) if field.label() == Label::Repeated => {
                self.twist = Twist::None;
                let end = out.len() + budget;
                self.counter = Some(0);
                while out.len() < end {
                    self.value(field, MAX_DEPTH.max(depth), out);
                }
                self.counter = None;
                return true;
            }
            _ => return false,
        }
        self.twist = Twist::None;
        true
    }

    fn value(&mut self, field: &FieldDescriptorProto, depth: usize, out: &mut Vec<u8>) {
        let number = field.number() as u32;
        let kind = field.r#type();
        match kind {
            Type::Message | Type::Group => {
                let mut nested = Vec::new();
                self.fill(field.type_name(), depth + 1, &mut nested);
                length_delimited(number, &nested, out);
            }
            Type::String => {
                let text = self.string();
                length_delimited(number, text.as_bytes(), out);
            }
            Type::Bytes => {
                let len = self.rng.below(40);
                let bytes = self.rng.bytes(len);
                length_delimited(number, &bytes, out);
            }
            Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                encode_key(number, WireType::SixtyFourBit, out);
                out.extend_from_slice(&self.integer().to_le_bytes());
            }
            Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                encode_key(number, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(self.integer() as u32).to_le_bytes());
            }
            Type::Sint32 | Type::Sint64 => {
                let n = self.integer() as i64;
                encode_key(number, WireType::Varint, out);
                encode_varint(((n << 1) ^ (n >> 63)) as u64, out);
            }
            Type::Bool => {
                encode_key(number, WireType::Varint, out);
                encode_varint(*self.rng.pick(&[0, 1, 1, 2]), out);
            }
            Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Enum => {
                encode_key(number, WireType::Varint, out);
                let value = if kind == Type::Enum && self.rng.chance(70) {
                    self.rng.below(6) as u64
                } else {
                    self.integer()
                };
                encode_varint(value, out);
            }
        }
    }

    /// Mostly small numbers, sometimes an edge: negative, the largest of each width.
    fn integer(&mut self) -> u64 {
        if let Some(n) = self.next_count() {
            return n;
        }
        match self.rng.below(10) {
            0..=4 => self.rng.below(10) as u64,
            5 => u64::MAX, // -1 as a signed varint
            6 => i32::MAX as u64,
            7 => i32::MIN as i64 as u64,
            8 => u64::from(u32::MAX),
            _ => self.rng.next_u64(),
        }
    }

    fn string(&mut self) -> String {
        if let Some(n) = self.next_count() {
            return format!("k{n}");
        }
        match self.rng.below(10) {
            0..=4 => (*self.rng.pick(self.strings)).to_owned(),
            5 => String::new(),
            6 => {
                let len = 1 + self.rng.below(24);
                (0..len)
                    .map(|_| *self.rng.pick(b"abcdefghijklmnopqrstuvwxyz0123456789-_.@") as char)
                    .collect()
            }
            7 => (*self.rng.pick(&[
                " ",
                "two\nlines",
                "nul\0byte",
                "ünïcødé ☎",
                "\u{202e}rtl",
                "tab\there",
                "../../etc/passwd",
                "%s%n",
            ]))
            .to_owned(),
            8 => "x".repeat(*self.rng.pick(&[127, 128, 129, 256, 1025])),
            _ => "long ".repeat(2_000),
        }
    }
}

impl Generator<'_> {
    fn next_count(&mut self) -> Option<u64> {
        let n = self.counter.as_mut()?;
        *n += 1;
        Some(*n)
    }
}

fn wire_type(kind: Type) -> WireType {
    match kind {
        Type::Message | Type::Group | Type::String | Type::Bytes => WireType::LengthDelimited,
        Type::Double | Type::Fixed64 | Type::Sfixed64 => WireType::SixtyFourBit,
        Type::Float | Type::Fixed32 | Type::Sfixed32 => WireType::ThirtyTwoBit,
        _ => WireType::Varint,
    }
}

fn length_delimited(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `message` as one gRPC frame: flag, big-endian length, bytes.
pub fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(flag);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}
