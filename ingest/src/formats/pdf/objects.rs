//! Small lenient accessors over lopdf objects: follow references, and treat anything of
//! the wrong type as absent rather than as an error, as viewers do.

use lopdf::{Dictionary, Document, Object, Stream};

/// References are followed a bounded number of times, so a reference cycle ends.
const MAX_REFERENCE_HOPS: usize = 16;

static NULL: Object = Object::Null;

pub(crate) fn deref<'a>(doc: &'a Document, mut object: &'a Object) -> &'a Object {
    for _ in 0..MAX_REFERENCE_HOPS {
        match object {
            Object::Reference(id) => match doc.get_object(*id) {
                Ok(target) => object = target,
                Err(_) => return &NULL,
            },
            _ => return object,
        }
    }
    &NULL
}

pub(crate) fn dict_get<'a>(
    doc: &'a Document,
    dict: &'a Dictionary,
    key: &[u8],
) -> Option<&'a Object> {
    dict.get(key)
        .ok()
        .map(|o| deref(doc, o))
        .filter(|o| !o.is_null())
}

/// A dictionary, or the dictionary of a stream.
pub(crate) fn dict_of<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    match deref(doc, object) {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

pub(crate) fn array_of<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Vec<Object>> {
    deref(doc, object).as_array().ok()
}

pub(crate) fn name_of(object: &Object) -> Option<&[u8]> {
    object.as_name().ok()
}

pub(crate) fn number(doc: &Document, object: &Object) -> Option<f32> {
    deref(doc, object).as_float().ok().filter(|f| f.is_finite())
}

/// Decoded stream data, bounded so a small compressed stream cannot exhaust memory.
pub(crate) fn stream_data(stream: &Stream) -> Option<Vec<u8>> {
    const MAX_STREAM_BYTES: usize = 64 << 20;
    stream.get_plain_content_with_limit(MAX_STREAM_BYTES).ok()
}
