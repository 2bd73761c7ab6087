//! A restricted pickle virtual machine: the part of the pickle format (protocols 2 to 4) that a
//! PyTorch tensor state dict uses, and nothing more.
//!
//! Nothing is ever executed. A global resolves only through the allow-list in
//! [`super::torch::resolve_global`], and "calling" an allowed global only builds a plain-data
//! description (an empty dict, a [`TensorSpec`]). Any other global, any other call target and any
//! opcode outside the supported set is an error, so a hostile checkpoint cannot run code.
//!
//! Lists and dicts live in arenas and values refer to them by index: pickle memo entries alias
//! the object on the stack (a dict is memoised empty and filled afterwards), and indices keep that
//! aliasing without reference-counted cells. Strings and tuples are `Rc` so that the memo
//! and `DUP` copy them in O(1), which keeps a small hostile file from making huge copies.

use std::collections::HashMap;
use std::rc::Rc;

use super::torch::{self, Global, StorageRef, TensorSpec};

/// One pickled value. Lists and dicts are indices into [`Unpickled`]'s arenas.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Integers wider than 64 bits (the legacy PyTorch magic number has 80 bits).
    BigInt(i128),
    /// A float; no tensor metadata needs its value, so only its presence is kept.
    Float,
    Str(Rc<str>),
    /// A bytes object; as for floats, only its presence is kept.
    Bytes,
    Tuple(Rc<[Value]>),
    List(usize),
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorSpec>),
}

impl Value {
    /// A short name of the value's type for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    /// The value as a non-negative integer that fits `usize`.
    pub(crate) fn as_usize(&self) -> Option<usize> {
        match self {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        }
    }
}

/// The outcome of running one pickle: its root value, the arenas its lists and dicts live in,
/// every storage its persistent ids named, and where the pickle ended.
#[derive(Debug)]
pub(crate) struct Unpickled {
    pub(crate) root: Value,
    pub(crate) lists: Vec<Vec<Value>>,
    pub(crate) dicts: Vec<Vec<(Value, Value)>>,
    pub(crate) storages: Vec<Rc<StorageRef>>,
    /// Byte offset just past the STOP opcode, where a following pickle in the same stream starts.
    pub(crate) end: usize,
}

impl Unpickled {
    /// The entries of `value` if it is a dict, in insertion order (later duplicates win on lookup).
    pub(crate) fn dict_entries(&self, value: &Value) -> Option<&[(Value, Value)]> {
        match value {
            Value::Dict(id) => self.dicts.get(*id).map(Vec::as_slice),
            _ => None,
        }
    }

    /// The items of `value` if it is a list or a tuple.
    pub(crate) fn sequence_items<'a>(&'a self, value: &'a Value) -> Option<&'a [Value]> {
        match value {
            Value::List(id) => self.lists.get(*id).map(Vec::as_slice),
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The value stored under the string key `key` of the dict `value` (the last one if repeated).
    pub(crate) fn dict_get(&self, value: &Value, key: &str) -> Option<&Value> {
        self.dict_entries(value)?
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, v)| v)
    }
}

/// Opcodes of the pickle format that this VM accepts; everything else is rejected.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

/// The highest pickle protocol this VM understands (PyTorch writes 2 by default).
const MAX_PROTOCOL: u8 = 5;
/// Integers wider than this many bytes are rejected rather than represented.
const MAX_LONG_BYTES: usize = 16;

/// Runs the pickle that starts at `data[start..]` and returns its value.
///
/// Errors are plain messages naming the opcode and byte offset; callers add the file name.
pub(crate) fn unpickle(data: &[u8], start: usize) -> Result<Unpickled, String> {
    let mut machine = Machine {
        input: Reader { data, pos: start },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        lists: Vec::new(),
        dicts: Vec::new(),
        storages: Vec::new(),
    };
    loop {
        let at = machine.input.pos;
        let code = machine.input.u8()?;
        let stopped =
            machine.step(code).map_err(|e| format!("pickle opcode 0x{code:02x} at byte {at}: {e}"))?;
        if let Some(root) = stopped {
            return Ok(Unpickled {
                root,
                lists: machine.lists,
                dicts: machine.dicts,
                storages: machine.storages,
                end: machine.input.pos,
            });
        }
    }
}

/// A bounds-checked cursor over the pickle bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.data.len()).ok_or_else(|| {
            format!(
                "unexpected end of data: needs {len} bytes at byte {}, only {} left (truncated file?)",
                self.pos,
                self.data.len().saturating_sub(self.pos)
            )
        })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length prefix as `usize`; `take` then checks it against the bytes actually left.
    fn len_u64(&mut self) -> Result<usize, String> {
        let len = self.u64()?;
        usize::try_from(len).map_err(|_| format!("length {len} does not fit in memory"))
    }

    /// A newline-terminated line (the text arguments of GLOBAL).
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unexpected end of data: unterminated line (truncated file?)")?;
        let line = self.take(len)?;
        self.pos += 1;
        std::str::from_utf8(line).map_err(|_| "GLOBAL name is not valid UTF-8".to_string())
    }
}

struct Machine<'a> {
    input: Reader<'a>,
    stack: Vec<Value>,
    /// Stack heights at each MARK, innermost last.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    lists: Vec<Vec<Value>>,
    dicts: Vec<Vec<(Value, Value)>>,
    storages: Vec<Rc<StorageRef>>,
}

impl Machine<'_> {
    /// Executes one opcode; returns the root value on STOP.
    fn step(&mut self, code: u8) -> Result<Option<Value>, String> {
        match code {
            op::PROTO => self.protocol()?,
            op::FRAME => {
                // Framing only groups opcodes for buffered reads; the content is read as usual.
                self.input.u64()?;
            }
            op::STOP => return self.pop().map(Some),
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?.clone();
                self.stack.push(top);
            }
            op::NONE => self.stack.push(Value::None),
            op::NEWTRUE => self.stack.push(Value::Bool(true)),
            op::NEWFALSE => self.stack.push(Value::Bool(false)),
            op::BININT | op::BININT1 | op::BININT2 | op::LONG1 | op::LONG4 | op::BINFLOAT => {
                self.number(code)?
            }
            op::BINUNICODE | op::SHORT_BINUNICODE | op::BINUNICODE8 | op::BINSTRING | op::SHORT_BINSTRING => {
                self.string(code)?
            }
            op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 => self.bytes(code)?,
            op::EMPTY_TUPLE | op::TUPLE | op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => self.tuple(code)?,
            op::EMPTY_LIST | op::LIST | op::APPEND | op::APPENDS => self.list(code)?,
            op::EMPTY_DICT | op::DICT | op::SETITEM | op::SETITEMS => self.dict(code)?,
            op::BINPUT | op::LONG_BINPUT | op::MEMOIZE => self.memo_put(code)?,
            op::BINGET | op::LONG_BINGET => self.memo_get(code)?,
            op::GLOBAL => {
                let module = self.input.line()?;
                let name = self.input.line()?;
                self.stack.push(Value::Global(torch::resolve_global(module, name)?));
            }
            op::STACK_GLOBAL => self.stack_global()?,
            op::REDUCE => self.reduce()?,
            op::NEWOBJ => self.new_object()?,
            op::BUILD => self.build()?,
            op::BINPERSID => self.persistent_load()?,
            _ => return Err("unsupported pickle opcode (not needed for a tensor state dict)".into()),
        }
        Ok(None)
    }

    fn protocol(&mut self) -> Result<(), String> {
        let version = self.input.u8()?;
        if version > MAX_PROTOCOL {
            return Err(format!("unsupported pickle protocol {version}"));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&mark| mark >= self.stack.len()) {
            return Err("stack underflow (pop past a MARK)".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".to_string())
    }

    fn top(&self) -> Result<&Value, String> {
        self.stack.last().ok_or_else(|| "stack underflow".to_string())
    }

    /// Removes everything above the innermost MARK, and the mark itself.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK on the stack")?;
        if mark > self.stack.len() {
            return Err("MARK above the top of the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn number(&mut self, code: u8) -> Result<(), String> {
        let value = match code {
            op::BININT => Value::Int(i64::from(i32::from_le_bytes(self.input.array()?))),
            op::BININT1 => Value::Int(i64::from(self.input.u8()?)),
            op::BININT2 => Value::Int(i64::from(self.input.u16()?)),
            op::LONG1 => {
                let len = usize::from(self.input.u8()?);
                long_from_le(self.input.take(len)?)?
            }
            op::LONG4 => {
                let len = self.input.u32()? as usize;
                if len > MAX_LONG_BYTES {
                    return Err(format!("integer of {len} bytes is too large"));
                }
                long_from_le(self.input.take(len)?)?
            }
            _ => {
                self.input.take(8)?;
                Value::Float
            }
        };
        self.stack.push(value);
        Ok(())
    }

    fn string(&mut self, code: u8) -> Result<(), String> {
        let len = match code {
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING => usize::from(self.input.u8()?),
            op::BINUNICODE => self.input.u32()? as usize,
            op::BINUNICODE8 => self.input.len_u64()?,
            _ => {
                let len = i32::from_le_bytes(self.input.array()?);
                usize::try_from(len).map_err(|_| format!("negative string length {len}"))?
            }
        };
        // Python 2 byte strings (BINSTRING) are read as UTF-8 text, as PyTorch's own loader does.
        let text = std::str::from_utf8(self.input.take(len)?)
            .map_err(|_| "string is not valid UTF-8".to_string())?;
        self.stack.push(Value::Str(Rc::from(text)));
        Ok(())
    }

    fn bytes(&mut self, code: u8) -> Result<(), String> {
        let len = match code {
            op::SHORT_BINBYTES => usize::from(self.input.u8()?),
            op::BINBYTES => self.input.u32()? as usize,
            _ => self.input.len_u64()?,
        };
        self.input.take(len)?;
        self.stack.push(Value::Bytes);
        Ok(())
    }

    fn tuple(&mut self, code: u8) -> Result<(), String> {
        let items = match code {
            op::EMPTY_TUPLE => Vec::new(),
            op::TUPLE => self.pop_mark()?,
            _ => {
                let count = usize::from(code - op::TUPLE1 + 1);
                let mut items = (0..count).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                items
            }
        };
        self.stack.push(Value::Tuple(Rc::from(items)));
        Ok(())
    }

    fn list(&mut self, code: u8) -> Result<(), String> {
        match code {
            op::EMPTY_LIST => self.push_list(Vec::new()),
            op::LIST => {
                let items = self.pop_mark()?;
                self.push_list(items);
            }
            op::APPEND => {
                let item = self.pop()?;
                let id = self.top_list()?;
                self.lists[id].push(item);
            }
            _ => {
                let items = self.pop_mark()?;
                let id = self.top_list()?;
                self.lists[id].extend(items);
            }
        }
        Ok(())
    }

    fn dict(&mut self, code: u8) -> Result<(), String> {
        match code {
            op::EMPTY_DICT => self.push_dict(Vec::new()),
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = into_pairs(items)?;
                self.push_dict(pairs);
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                let id = self.top_dict()?;
                self.dicts[id].push((key, value));
            }
            _ => {
                let items = self.pop_mark()?;
                let pairs = into_pairs(items)?;
                let id = self.top_dict()?;
                self.dicts[id].extend(pairs);
            }
        }
        Ok(())
    }

    fn push_list(&mut self, items: Vec<Value>) {
        self.lists.push(items);
        self.stack.push(Value::List(self.lists.len() - 1));
    }

    fn push_dict(&mut self, pairs: Vec<(Value, Value)>) {
        self.dicts.push(pairs);
        self.stack.push(Value::Dict(self.dicts.len() - 1));
    }

    fn top_list(&self) -> Result<usize, String> {
        match self.top()? {
            Value::List(id) => Ok(*id),
            other => Err(format!("append to a {}, expected a list", other.kind())),
        }
    }

    fn top_dict(&self) -> Result<usize, String> {
        match self.top()? {
            Value::Dict(id) => Ok(*id),
            other => Err(format!("set item on a {}, expected a dict", other.kind())),
        }
    }

    fn memo_put(&mut self, code: u8) -> Result<(), String> {
        let index = match code {
            op::BINPUT => u32::from(self.input.u8()?),
            op::LONG_BINPUT => self.input.u32()?,
            _ => u32::try_from(self.memo.len()).map_err(|_| "memo is full".to_string())?,
        };
        let top = self.top()?.clone();
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, code: u8) -> Result<(), String> {
        let index = match code {
            op::BINGET => u32::from(self.input.u8()?),
            _ => self.input.u32()?,
        };
        let value = self.memo.get(&index).ok_or_else(|| format!("memo entry {index} is missing"))?;
        self.stack.push(value.clone());
        Ok(())
    }

    fn stack_global(&mut self) -> Result<(), String> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
            return Err(format!(
                "STACK_GLOBAL needs two strings, got a {} and a {}",
                module.kind(),
                name.kind()
            ));
        };
        self.stack.push(Value::Global(torch::resolve_global(module, name)?));
        Ok(())
    }

    /// Applies an allowed callable to its argument tuple, building data, never running code.
    fn reduce(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Global(global) = callable else {
            return Err(format!("REDUCE on a {}: only allowed globals may be called", callable.kind()));
        };
        let Value::Tuple(args) = args else {
            return Err(format!("REDUCE arguments are a {}, expected a tuple", args.kind()));
        };
        let result = match global {
            Global::OrderedDict => self.ordered_dict(&args)?,
            _ => torch::call(global, &args)?,
        };
        self.stack.push(result);
        Ok(())
    }

    /// `OrderedDict()` or `OrderedDict([(key, value), ...])`.
    fn ordered_dict(&mut self, args: &[Value]) -> Result<Value, String> {
        let pairs = match args {
            [] => Vec::new(),
            [Value::List(id)] => {
                let items = self.lists[*id].clone();
                items.iter().map(pair_from_tuple).collect::<Result<_, _>>()?
            }
            _ => return Err("OrderedDict takes no arguments or one list of (key, value) pairs".into()),
        };
        self.dicts.push(pairs);
        Ok(Value::Dict(self.dicts.len() - 1))
    }

    /// `cls.__new__(cls, *args)`: only an empty OrderedDict can be created this way.
    fn new_object(&mut self) -> Result<(), String> {
        let _args = self.pop()?;
        let class = self.pop()?;
        match class {
            Value::Global(Global::OrderedDict) => {
                self.push_dict(Vec::new());
                Ok(())
            }
            Value::Global(global) => Err(format!("NEWOBJ of `{}` is not allowed", global.name())),
            other => Err(format!("NEWOBJ of a {} is not allowed", other.kind())),
        }
    }

    /// Sets an object's state. PyTorch state dicts carry a `_metadata` attribute (module versions)
    /// this way; it does not affect the tensors, so it is dropped. Nothing else may be built.
    fn build(&mut self) -> Result<(), String> {
        let _state = self.pop()?;
        match self.top()? {
            Value::Dict(_) => Ok(()),
            other => Err(format!("BUILD on a {} is not allowed", other.kind())),
        }
    }

    fn persistent_load(&mut self) -> Result<(), String> {
        let pid = self.pop()?;
        let storage = Rc::new(torch::storage_from_pid(&pid)?);
        self.storages.push(Rc::clone(&storage));
        self.stack.push(Value::Storage(storage));
        Ok(())
    }
}

/// Decodes a little-endian two's-complement integer of at most [`MAX_LONG_BYTES`] bytes.
fn long_from_le(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_LONG_BYTES {
        return Err(format!("integer of {} bytes is too large", bytes.len()));
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut bits: u128 = if negative { u128::MAX } else { 0 };
    for &byte in bytes.iter().rev() {
        bits = (bits << 8) | u128::from(byte);
    }
    let value = bits as i128;
    Ok(i64::try_from(value).map_or(Value::BigInt(value), Value::Int))
}

fn into_pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("odd number of items ({}) for a dict", items.len()));
    }
    let mut pairs = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn pair_from_tuple(item: &Value) -> Result<(Value, Value), String> {
    match item {
        Value::Tuple(pair) if pair.len() == 2 => Ok((pair[0].clone(), pair[1].clone())),
        other => Err(format!("OrderedDict item is a {}, expected a (key, value) tuple", other.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Unpickled, String> {
        unpickle(bytes, 0)
    }

    #[test]
    fn reads_plain_containers_and_aliases_memoised_dicts() {
        // {}: memoised empty, filled by SETITEMS, then fetched again from the memo: both refer to
        // the same filled dict, as in Python.
        let bytes = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x07u]q\x01(h\x00h\x00e.";
        let out = run(bytes).expect("valid pickle");
        let items = out.sequence_items(&out.root).expect("a list");
        assert_eq!(items.len(), 2);
        for item in items {
            assert!(matches!(out.dict_get(item, "a"), Some(Value::Int(7))));
        }
        assert_eq!(out.end, bytes.len());
    }

    #[test]
    fn decodes_wide_integers() {
        let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let out = run(magic).expect("valid pickle");
        assert!(matches!(out.root, Value::BigInt(v) if v == 0x1950a86a20f9469cfc6c));
        let minus_one = run(b"\x8a\x01\xff.").expect("valid pickle");
        assert!(matches!(minus_one.root, Value::Int(-1)));
    }

    #[test]
    fn rejects_forbidden_globals_before_anything_runs() {
        let err = run(b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.").unwrap_err();
        assert!(err.contains("builtins.eval"), "{err}");
        let err = run(b"\x80\x04\x8c\x05posix\x8c\x06system\x93.").unwrap_err();
        assert!(err.contains("posix.system"), "{err}");
    }

    #[test]
    fn rejects_unknown_opcodes_truncation_and_bad_stack_use() {
        assert!(run(b"\x80\x02I1\n.").unwrap_err().contains("unsupported pickle opcode"));
        assert!(run(b"\x80\x02X\xff\x00\x00\x00ab").unwrap_err().contains("unexpected end of data"));
        assert!(run(b"\x80\x02.").unwrap_err().contains("stack underflow"));
        assert!(run(b"\x80\x02h\x05.").unwrap_err().contains("memo entry 5 is missing"));
        assert!(run(b"\x80\x02K\x01K\x02R.").unwrap_err().contains("REDUCE on a int"));
    }
}
