//! A memory-mapped GGUF file: typed metadata lookups and zero-copy views of its tensors.
//! The header is parsed by candle's reader; the tensor bytes stay in the mapping.

use super::weight::Weight;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use memmap2::Mmap;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened GGUF checkpoint.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mmap>,
    content: Content,
}

impl GgufFile {
    /// Maps `path` and reads its header; a truncated or foreign file is refused here.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: model files are read-only inputs; a user rewriting the file under a running
        // engine is outside what we can defend against with a mapping (as for llama.cpp).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let content = Content::read(&mut Cursor::new(&map[..])).map_err(|e| {
            Error::Model(format!("{}: not a readable GGUF file: {e}", path.display()))
        })?;
        let this = GgufFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
            content,
        };
        for (name, info) in &this.content.tensor_infos {
            let end = this.tensor_range(name, info)?.end;
            if end > this.map.len() {
                return Err(this.err(format!(
                    "tensor {name} ends at byte {end} but the file has {} bytes (truncated download?)",
                    this.map.len()
                )));
            }
        }
        Ok(this)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Model(format!("{}: {what}", self.path.display()))
    }

    fn tensor_range(
        &self,
        name: &str,
        info: &candle_core::quantized::gguf_file::TensorInfo,
    ) -> Result<std::ops::Range<usize>> {
        let dtype = info.ggml_dtype;
        let elems = info.shape.elem_count();
        if !elems.is_multiple_of(dtype.block_size()) {
            return Err(self.err(format!(
                "tensor {name}: {elems} values do not fill {dtype:?} blocks"
            )));
        }
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        Ok(start..start + elems / dtype.block_size() * dtype.type_size())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// An integer metadata value of any width.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.get(key)
            .and_then(value_usize)
            .ok_or_else(|| self.err(format!("metadata {key} is missing or not an integer")))
    }

    pub fn usize_or(&self, key: &str, default: usize) -> usize {
        self.get(key).and_then(value_usize).unwrap_or(default)
    }

    pub fn f32_or(&self, key: &str, default: f32) -> f32 {
        match self.get(key) {
            Some(Value::F32(v)) => *v,
            Some(Value::F64(v)) => *v as f32,
            _ => default,
        }
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    pub fn array(&self, key: &str) -> Option<&[Value]> {
        match self.get(key) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        }
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// A view of tensor `name` as a `[rows, cols]` matrix (a vector is one row).
    pub fn weight(&self, name: &str) -> Result<Weight> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.err(format!("tensor {name} is missing")))?;
        let dims = info.shape.dims();
        let (rows, cols) = match dims {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => {
                return Err(self.err(format!(
                    "tensor {name} has shape {dims:?}, expected 1 or 2 dims"
                )))
            }
        };
        if cols % info.ggml_dtype.block_size() != 0 {
            return Err(self.err(format!(
                "tensor {name}: rows of {cols} values are not whole {:?} blocks",
                info.ggml_dtype
            )));
        }
        let range = self.tensor_range(name, info)?;
        Weight::new(name, info.ggml_dtype, rows, cols, self.map.clone(), range)
    }
}

pub(crate) fn value_usize(v: &Value) -> Option<usize> {
    match *v {
        Value::U8(x) => Some(x as usize),
        Value::I8(x) => usize::try_from(x).ok(),
        Value::U16(x) => Some(x as usize),
        Value::I16(x) => usize::try_from(x).ok(),
        Value::U32(x) => Some(x as usize),
        Value::I32(x) => usize::try_from(x).ok(),
        Value::U64(x) => usize::try_from(x).ok(),
        Value::I64(x) => usize::try_from(x).ok(),
        _ => None,
    }
}
