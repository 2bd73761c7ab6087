//! Reading `.npy` arrays of patches with every size checked before anything is allocated.
//!
//! The header of a `.npy` file is a Python dict literal that declares the dtype and the shape.
//! A hostile or damaged file can declare anything: dimensions whose product overflows, or a shape
//! far larger than the file. The header is therefore parsed here, its product computed with
//! checked arithmetic, and the declared data size compared with the file's real length, so that a
//! bad file is an error naming it, never a panic or an allocation the file cannot back.

use std::path::Path;

use crate::error::{DataError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy itself refuses headers longer than 10 000 bytes by default; allow some slack.
const MAX_HEADER_LEN: usize = 1 << 16;
/// Nesting depth of the header literal; a real header needs 2 (dict, shape tuple).
const MAX_DEPTH: usize = 8;

/// The element types patch arrays come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `uint8`, values 0..255.
    U8,
    /// `float32`, little-endian.
    F32Le,
    /// `float32`, big-endian.
    F32Be,
}

impl NpyDtype {
    fn from_descr(descr: &str) -> Option<Self> {
        match descr {
            "|u1" | "<u1" | ">u1" | "=u1" | "u1" => Some(Self::U8),
            "<f4" => Some(Self::F32Le),
            ">f4" => Some(Self::F32Be),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32Le | Self::F32Be => 4,
        }
    }
}

/// The values of an array, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `uint8` values.
    U8(Vec<u8>),
    /// `float32` values.
    F32(Vec<f32>),
}

/// A `.npy` array whose declared size matched the file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape, as declared (its product is the number of values).
    pub shape: Vec<usize>,
    /// Column-major storage (`fortran_order: True`).
    pub fortran_order: bool,
    /// The values.
    pub data: NpyData,
}

/// What the header declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The `descr` string, e.g. `|u1` or `<f4`.
    pub descr: String,
    /// Column-major storage.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: usize,
}

/// Reads a `.npy` file of `uint8` or `float32` values. The file must be a regular file (not a
/// FIFO or a device, which could be read forever) whose length is exactly the header plus the
/// declared data.
pub fn read(path: &Path) -> Result<NpyArray> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(DataError::invalid(path, "not a regular file"));
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    from_bytes(&bytes).map_err(|msg| DataError::invalid(path, msg))
}

/// Parses a whole `.npy` file held in memory; the error says what is wrong (without a path).
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let header = parse_header(bytes)?;
    let dtype = NpyDtype::from_descr(&header.descr).ok_or_else(|| {
        format!("dtype {} is not supported (use uint8 0..255 or float32 0..1)", header.descr)
    })?;
    let count = checked_product(&header.shape)
        .ok_or_else(|| format!("shape {:?} has more values than can be addressed", header.shape))?;
    let data = &bytes[header.data_offset..];
    let declared = count.checked_mul(dtype.size()).filter(|&n| n == data.len());
    if declared.is_none() {
        return Err(format!(
            "header declares shape {:?} of {} ({} bytes of data) but the file holds {} bytes after the header (truncated or corrupt)",
            header.shape,
            header.descr,
            count.checked_mul(dtype.size()).map_or("too many".to_string(), |n| n.to_string()),
            data.len()
        ));
    }
    let data = match dtype {
        NpyDtype::U8 => NpyData::U8(data.to_vec()),
        NpyDtype::F32Le => NpyData::F32(floats(data, f32::from_le_bytes)),
        NpyDtype::F32Be => NpyData::F32(floats(data, f32::from_be_bytes)),
    };
    Ok(NpyArray { shape: header.shape, fortran_order: header.fortran_order, data })
}

fn floats(data: &[u8], decode: fn([u8; 4]) -> f32) -> Vec<f32> {
    data.chunks_exact(4).map(|c| decode([c[0], c[1], c[2], c[3]])).collect()
}

/// The product of `shape`, or `None` when it overflows `usize`.
pub fn checked_product(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Parses the magic, version, header length and header dict of a `.npy` file.
pub fn parse_header(bytes: &[u8]) -> std::result::Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        2 | 3 => return Err("truncated .npy header".into()),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(".npy header of {len} bytes is longer than the {MAX_HEADER_LEN} allowed"));
    }
    let end = start + len;
    let text = bytes.get(start..end).ok_or("truncated .npy header (the file ends inside it)")?;
    let text = std::str::from_utf8(text).map_err(|_| "the .npy header is not text".to_string())?;
    let value = Parser { s: text.as_bytes(), pos: 0 }.document()?;
    header_fields(value, end)
}

fn header_fields(value: Value, data_offset: usize) -> std::result::Result<NpyHeader, String> {
    let Value::Dict(entries) = value else { return Err("the .npy header is not a dict".into()) };
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(Value::Str(s)) => s.clone(),
        Some(_) => return Err("structured dtypes are not supported (use uint8 or float32)".into()),
        None => return Err("the .npy header lacks `descr`".into()),
    };
    let fortran_order = match get("fortran_order") {
        Some(Value::Bool(b)) => *b,
        _ => return Err("the .npy header lacks a boolean `fortran_order`".into()),
    };
    let shape = match get("shape") {
        Some(Value::Seq(items)) => items
            .iter()
            .map(|v| match v {
                Value::Int(n) => usize::try_from(*n).map_err(|_| format!("dimension {n} is too large")),
                _ => Err("shape entries must be integers".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        _ => return Err("the .npy header lacks a tuple `shape`".into()),
    };
    Ok(NpyHeader { descr, fortran_order, shape, data_offset })
}

/// The subset of Python literals a `.npy` header uses.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Seq(Vec<Value>),
    Dict(Vec<(String, Value)>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn document(mut self) -> std::result::Result<Value, String> {
        let value = self.value(0)?;
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(format!("unexpected text after the header dict at byte {}", self.pos));
        }
        Ok(value)
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the .npy header is nested too deeply".into());
        }
        match self.peek() {
            Some(b'{') => self.dict(depth),
            Some(b'(') => self.seq(b')', depth),
            Some(b'[') => self.seq(b']', depth),
            Some(q @ (b'\'' | b'"')) => self.string(q).map(Value::Str),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(_) => self.word(),
            None => Err("the .npy header ends early".into()),
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("malformed .npy header: expected `{}` at byte {}", c as char, self.pos))
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Value, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        while self.peek() != Some(b'}') {
            let Some(q @ (b'\'' | b'"')) = self.peek() else {
                return Err(format!("malformed .npy header: expected a key at byte {}", self.pos));
            };
            let key = self.string(q)?;
            self.expect(b':')?;
            entries.push((key, self.value(depth + 1)?));
            if self.peek() != Some(b'}') {
                self.expect(b',')?;
            }
        }
        self.pos += 1;
        Ok(Value::Dict(entries))
    }

    fn seq(&mut self, close: u8, depth: usize) -> std::result::Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        while self.peek() != Some(close) {
            items.push(self.value(depth + 1)?);
            if self.peek() != Some(close) {
                self.expect(b',')?;
            }
        }
        self.pos += 1;
        Ok(Value::Seq(items))
    }

    fn string(&mut self, quote: u8) -> std::result::Result<String, String> {
        self.pos += 1;
        let start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            if c == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                return Ok(text);
            }
            if c == b'\\' {
                return Err("escapes in .npy header strings are not supported".into());
            }
            self.pos += 1;
        }
        Err("unterminated string in the .npy header".into())
    }

    fn int(&mut self) -> std::result::Result<Value, String> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        // Python 2 headers may write `32L`.
        let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        if self.s.get(self.pos) == Some(&b'L') {
            self.pos += 1;
        }
        digits.parse().map(Value::Int).map_err(|_| format!("dimension {digits} is too large"))
    }

    fn word(&mut self) -> std::result::Result<Value, String> {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_alphabetic) {
            self.pos += 1;
        }
        match &self.s[start..self.pos] {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::None),
            _ => Err(format!("malformed .npy header: unexpected text at byte {start}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` with `header` padded as numpy pads it, followed by `data`.
    pub(crate) fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut text = header.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((text.len() as u16).to_le_bytes());
        out.extend(text.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_uint8_and_float32() {
        let u8s = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", &[1, 2, 3, 4, 5, 6]);
        let a = from_bytes(&u8s).unwrap();
        assert_eq!((a.shape, a.data), (vec![2, 3], NpyData::U8(vec![1, 2, 3, 4, 5, 6])));
        let f: Vec<u8> = [0.5f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = from_bytes(&npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", &f)).unwrap();
        assert!(a.fortran_order);
        assert_eq!(a.data, NpyData::F32(vec![0.5, 1.0]));
    }

    #[test]
    fn overflowing_and_oversized_shapes_are_errors() {
        let huge = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904, 32), }", &[0; 64]);
        assert!(from_bytes(&huge).unwrap_err().contains("addressed"));
        // 2^20 * (2^44 + 1) wraps to 2^20 in 64 bits: the length check still refuses it.
        let wraps = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 17592186044417, 1), }",
            &[0; 64],
        );
        assert!(from_bytes(&wraps).is_err());
        let short = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 32, 32), }", &[0; 100]);
        let err = from_bytes(&short).unwrap_err();
        assert!(err.contains("2048 bytes") && err.contains("100 bytes"), "{err}");
    }

    #[test]
    fn malformed_headers_are_errors() {
        for header in [
            "{'descr': '|u1', 'fortran_order': False}",
            "{'descr': '|u1', 'shape': (1,)}",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1,)} extra",
            "((((((((((((1))))))))))))",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
        ] {
            assert!(from_bytes(&npy(header, &[0])).is_err(), "{header}");
        }
        assert!(from_bytes(b"\x93NUMPY\x01\x00\xff\xff").is_err());
        assert!(from_bytes(b"PK\x03\x04").is_err());
    }
}
