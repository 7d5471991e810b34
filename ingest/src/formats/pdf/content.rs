//! Content-stream interpretation: runs the text and graphics-state operators of a page
//! (and the forms it draws) and records every glyph with its device position.

use super::font::Font;
use super::objects::{deref, dict_get, dict_of, name_of, stream_data};
use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashMap;
use std::rc::Rc;

/// Forms nested deeper than this are not drawn; real documents nest two or three levels.
const MAX_FORM_DEPTH: usize = 12;
/// Operators executed per page, forms included: bounds the work a hostile file can cause
/// by drawing one form many times from many nested forms.
const MAX_OPERATIONS: usize = 5_000_000;
/// Glyphs kept per page: one show string of a hostile page can hold millions of codes.
const MAX_GLYPHS: usize = 1_000_000;
/// Decompressed size limit for one page's content.
const MAX_PAGE_BYTES: usize = 64 << 20;

/// An axis-aligned rectangle in device space (PDF user space of the page, y up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    fn around(points: impl IntoIterator<Item = (f32, f32)>) -> Option<Rect> {
        points.into_iter().fold(None, |acc: Option<Rect>, (x, y)| {
            Some(match acc {
                None => Rect {
                    x0: x,
                    y0: y,
                    x1: x,
                    y1: y,
                },
                Some(r) => Rect {
                    x0: r.x0.min(x),
                    y0: r.y0.min(y),
                    x1: r.x1.max(x),
                    y1: r.y1.max(y),
                },
            })
        })
    }

    pub(crate) fn union(self, other: Rect) -> Rect {
        Rect {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    pub(crate) fn intersect(self, other: Rect) -> Rect {
        Rect {
            x0: self.x0.max(other.x0),
            y0: self.y0.max(other.y0),
            x1: self.x1.min(other.x1).max(self.x0.max(other.x0)),
            y1: self.y1.min(other.y1).max(self.y0.max(other.y0)),
        }
    }

    pub(crate) fn contains_center(&self, other: &Rect) -> bool {
        let (cx, cy) = ((other.x0 + other.x1) / 2.0, (other.y0 + other.y1) / 2.0);
        self.x0 <= cx && cx <= self.x1 && self.y0 <= cy && cy <= self.y1
    }

    pub(crate) fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub(crate) fn height(&self) -> f32 {
        self.y1 - self.y0
    }
}

/// One shown glyph. `x0..x1` is its advance along the baseline at height `y`.
#[derive(Debug, Clone)]
pub(crate) struct Glyph {
    pub text: String,
    pub x0: f32,
    pub x1: f32,
    pub y: f32,
    pub size: f32,
    /// Index into [`PageContent::clips`] of the clip region the glyph was drawn in.
    pub clip: Option<usize>,
}

/// Everything the layout step needs from one page.
#[derive(Debug, Default)]
pub(crate) struct PageContent {
    pub glyphs: Vec<Glyph>,
    /// Distinct clip rectangles; table producers clip each cell's text to the cell.
    pub clips: Vec<Rect>,
    /// Set when a font's text could not be read for want of poppler-data.
    pub missing_data: Option<String>,
}

/// `[a b c d e f]` as in PDF: maps (x, y) to (a·x + c·y + e, b·x + d·y + f).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Matrix([f32; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn translate(tx: f32, ty: f32) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    /// `self` applied first, then `then`.
    fn then(&self, then: &Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = then.0;
        Matrix([
            a * a2 + b * c2,
            a * b2 + b * d2,
            c * a2 + d * c2,
            c * b2 + d * d2,
            e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2,
        ])
    }

    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + c * y + e, b * x + d * y + f)
    }

    fn from_operands(operands: &[Object]) -> Option<Matrix> {
        let mut m = [0.0; 6];
        if operands.len() < 6 {
            return None;
        }
        for (slot, o) in m.iter_mut().zip(operands) {
            *slot = o.as_float().ok().filter(|f| f.is_finite())?;
        }
        Some(Matrix(m))
    }
}

#[derive(Clone)]
struct GraphicsState {
    ctm: Matrix,
    clip: Option<Rect>,
    font: Option<Rc<Font>>,
    font_size: f32,
    char_spacing: f32,
    word_spacing: f32,
    horizontal_scale: f32,
    leading: f32,
    rise: f32,
}

/// Fonts resolved so far in a document, by object id, shared by all its pages.
#[derive(Default)]
pub(crate) struct FontCache {
    fonts: HashMap<ObjectId, Rc<Font>>,
}

impl FontCache {
    fn get(&mut self, doc: &Document, object: &Object) -> Option<Rc<Font>> {
        match object {
            Object::Reference(id) => {
                if let Some(font) = self.fonts.get(id) {
                    return Some(font.clone());
                }
                let font = Rc::new(Font::load(doc, dict_of(doc, object)?));
                self.fonts.insert(*id, font.clone());
                Some(font)
            }
            Object::Dictionary(dict) => Some(Rc::new(Font::load(doc, dict))),
            _ => None,
        }
    }
}

/// Runs the content streams of one page and collects its glyphs.
pub(crate) fn page_content(
    doc: &Document,
    page_id: ObjectId,
    fonts: &mut FontCache,
) -> PageContent {
    let empty = Dictionary::new();
    let resources = page_resources(doc, page_id).unwrap_or(&empty);
    let data = doc
        .get_page_content_with_limit(page_id, MAX_PAGE_BYTES)
        .unwrap_or_default();
    let mut interpreter = Interpreter {
        doc,
        fonts,
        out: PageContent::default(),
        clip_index: HashMap::new(),
        gs: GraphicsState {
            ctm: Matrix::IDENTITY,
            clip: None,
            font: None,
            font_size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        },
        stack: Vec::new(),
        text_matrix: Matrix::IDENTITY,
        line_matrix: Matrix::IDENTITY,
        path: None,
        clip_pending: false,
        operations: 0,
        forms: Vec::new(),
    };
    interpreter.run(&data, resources);
    interpreter.out
}

/// A page's `/Resources`, inherited from the page tree when the page has none.
fn page_resources(doc: &Document, page_id: ObjectId) -> Option<&Dictionary> {
    let mut node = doc.get_dictionary(page_id).ok()?;
    for _ in 0..32 {
        if let Some(resources) = dict_get(doc, node, b"Resources").and_then(|o| o.as_dict().ok()) {
            return Some(resources);
        }
        node = dict_get(doc, node, b"Parent").and_then(|o| o.as_dict().ok())?;
    }
    None
}

struct Interpreter<'a, 'f> {
    doc: &'a Document,
    fonts: &'f mut FontCache,
    out: PageContent,
    clip_index: HashMap<[i32; 4], usize>,
    gs: GraphicsState,
    stack: Vec<GraphicsState>,
    text_matrix: Matrix,
    line_matrix: Matrix,
    /// Bounding box of the path under construction, in device space.
    path: Option<Rect>,
    clip_pending: bool,
    operations: usize,
    /// Forms being drawn, innermost last, so a form that draws itself is caught.
    forms: Vec<ObjectId>,
}

impl<'a> Interpreter<'a, '_> {
    fn run(&mut self, data: &[u8], resources: &'a Dictionary) {
        for operation in Content::decode_iter(data).map_while(Result::ok) {
            self.operations += 1;
            if self.operations > MAX_OPERATIONS {
                return;
            }
            let ops = operation.operands.as_slice();
            let num = |i: usize| {
                ops.get(i)
                    .and_then(|o| o.as_float().ok())
                    .filter(|f| f.is_finite())
            };
            match operation.operator.as_str() {
                // Unbalanced q's in a hostile stream must not grow memory without bound.
                "q" if self.stack.len() < 1024 => self.stack.push(self.gs.clone()),
                "Q" => {
                    if let Some(gs) = self.stack.pop() {
                        self.gs = gs;
                    }
                }
                "cm" => {
                    if let Some(m) = Matrix::from_operands(ops) {
                        self.gs.ctm = m.then(&self.gs.ctm);
                    }
                }
                "m" | "l" => {
                    if let (Some(x), Some(y)) = (num(0), num(1)) {
                        self.add_points(&[(x, y)]);
                    }
                }
                "c" => {
                    if let (Some(x1), Some(y1), Some(x2), Some(y2), Some(x3), Some(y3)) =
                        (num(0), num(1), num(2), num(3), num(4), num(5))
                    {
                        self.add_points(&[(x1, y1), (x2, y2), (x3, y3)]);
                    }
                }
                "v" | "y" => {
                    if let (Some(x1), Some(y1), Some(x2), Some(y2)) =
                        (num(0), num(1), num(2), num(3))
                    {
                        self.add_points(&[(x1, y1), (x2, y2)]);
                    }
                }
                "re" => {
                    if let (Some(x), Some(y), Some(w), Some(h)) = (num(0), num(1), num(2), num(3)) {
                        self.add_points(&[(x, y), (x + w, y), (x, y + h), (x + w, y + h)]);
                    }
                }
                "W" | "W*" => self.clip_pending = true,
                "n" | "S" | "s" | "f" | "F" | "f*" | "B" | "B*" | "b" | "b*" => self.end_path(),
                "BT" => {
                    self.text_matrix = Matrix::IDENTITY;
                    self.line_matrix = Matrix::IDENTITY;
                }
                "Tc" => self.gs.char_spacing = num(0).unwrap_or(0.0),
                "Tw" => self.gs.word_spacing = num(0).unwrap_or(0.0),
                "Tz" => self.gs.horizontal_scale = num(0).unwrap_or(100.0) / 100.0,
                "TL" => self.gs.leading = num(0).unwrap_or(0.0),
                "Ts" => self.gs.rise = num(0).unwrap_or(0.0),
                "Tf" => {
                    self.gs.font = ops
                        .first()
                        .and_then(name_of)
                        .and_then(|name| self.font_resource(resources, name));
                    self.gs.font_size = num(1).unwrap_or(0.0);
                }
                "Td" => self.move_line(num(0).unwrap_or(0.0), num(1).unwrap_or(0.0)),
                "TD" => {
                    let ty = num(1).unwrap_or(0.0);
                    self.gs.leading = -ty;
                    self.move_line(num(0).unwrap_or(0.0), ty);
                }
                "Tm" => {
                    if let Some(m) = Matrix::from_operands(ops) {
                        self.text_matrix = m;
                        self.line_matrix = m;
                    }
                }
                "T*" => self.move_line(0.0, -self.gs.leading),
                "Tj" => {
                    if let Some(Ok(bytes)) = ops.first().map(Object::as_str) {
                        self.show(bytes);
                    }
                }
                "'" => {
                    self.move_line(0.0, -self.gs.leading);
                    if let Some(Ok(bytes)) = ops.first().map(Object::as_str) {
                        self.show(bytes);
                    }
                }
                "\"" => {
                    self.gs.word_spacing = num(0).unwrap_or(0.0);
                    self.gs.char_spacing = num(1).unwrap_or(0.0);
                    self.move_line(0.0, -self.gs.leading);
                    if let Some(Ok(bytes)) = ops.get(2).map(Object::as_str) {
                        self.show(bytes);
                    }
                }
                "TJ" => {
                    let Some(Ok(items)) = ops.first().map(Object::as_array) else {
                        continue;
                    };
                    for item in items {
                        match item {
                            Object::String(bytes, _) => self.show(bytes),
                            other => {
                                if let Ok(adjust) = other.as_float() {
                                    self.adjust(adjust);
                                }
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = ops.first().and_then(name_of) {
                        self.draw_xobject(resources, name);
                    }
                }
                _ => {}
            }
        }
    }

    fn add_points(&mut self, points: &[(f32, f32)]) {
        let ctm = self.gs.ctm;
        if let Some(r) = Rect::around(points.iter().map(|&(x, y)| ctm.apply(x, y))) {
            self.path = Some(self.path.map_or(r, |p| p.union(r)));
        }
    }

    fn end_path(&mut self) {
        if self.clip_pending {
            if let Some(path) = self.path {
                self.gs.clip = Some(self.gs.clip.map_or(path, |c| c.intersect(path)));
            }
        }
        self.clip_pending = false;
        self.path = None;
    }

    fn font_resource(&mut self, resources: &Dictionary, name: &[u8]) -> Option<Rc<Font>> {
        let fonts = dict_get(self.doc, resources, b"Font")?.as_dict().ok()?;
        let entry = fonts.get(name).ok()?;
        self.fonts.get(self.doc, entry)
    }

    fn move_line(&mut self, tx: f32, ty: f32) {
        self.line_matrix = Matrix::translate(tx, ty).then(&self.line_matrix);
        self.text_matrix = self.line_matrix;
    }

    /// A TJ number: moves the next glyph back by thousandths of the font size.
    fn adjust(&mut self, amount: f32) {
        let shift = -amount / 1000.0 * self.gs.font_size;
        let vertical = self.gs.font.as_ref().is_some_and(|f| f.is_vertical());
        let step = if vertical {
            Matrix::translate(0.0, shift)
        } else {
            Matrix::translate(shift * self.gs.horizontal_scale, 0.0)
        };
        self.text_matrix = step.then(&self.text_matrix);
    }

    fn show(&mut self, bytes: &[u8]) {
        let Some(font) = self.gs.font.clone() else {
            return;
        };
        let gs = &self.gs;
        let mut rest = bytes;
        while !rest.is_empty() && self.out.glyphs.len() < MAX_GLYPHS {
            let code = font.next_code(rest);
            rest = rest.get(code.len..).unwrap_or_default();
            let device = self.text_matrix.then(&gs.ctm);
            let (x0, y) = device.apply(0.0, gs.rise);
            let word_space = if code.len == 1 && code.value == 32 {
                gs.word_spacing
            } else {
                0.0
            };
            let step = if font.is_vertical() {
                // Vertical metrics (/W2) are rarely given; the default advance is one em down.
                Matrix::translate(0.0, -gs.font_size + gs.char_spacing + word_space)
            } else {
                let advance =
                    font.advance(code.value) * gs.font_size + gs.char_spacing + word_space;
                Matrix::translate(advance * gs.horizontal_scale, 0.0)
            };
            self.text_matrix = step.then(&self.text_matrix);
            let (x1, _) = self.text_matrix.then(&gs.ctm).apply(0.0, gs.rise);
            let [_, _, c, d, _, _] = device.0;
            let size = gs.font_size.abs() * (c * c + d * d).sqrt();
            let Some(text) = font.text(code.value) else {
                if self.out.missing_data.is_none() {
                    self.out.missing_data = font.missing_data().map(str::to_string);
                }
                continue;
            };
            if !(x0.is_finite() && x1.is_finite() && y.is_finite() && size.is_finite()) {
                continue;
            }
            let clip = gs.clip.map(|c| {
                let key = [c.x0, c.y0, c.x1, c.y1].map(|v| (v * 4.0).round() as i32);
                let next = self.out.clips.len();
                *self.clip_index.entry(key).or_insert_with(|| {
                    self.out.clips.push(c);
                    next
                })
            });
            self.out.glyphs.push(Glyph {
                text,
                x0: x0.min(x1),
                x1: x0.max(x1),
                y,
                size,
                clip,
            });
        }
    }

    fn draw_xobject(&mut self, resources: &'a Dictionary, name: &[u8]) {
        let doc = self.doc;
        let Some(xobjects) = dict_get(doc, resources, b"XObject").and_then(|o| o.as_dict().ok())
        else {
            return;
        };
        let Ok(entry) = xobjects.get(name) else {
            return;
        };
        let Ok(id) = entry.as_reference() else {
            return;
        };
        let Ok(stream) = deref(doc, entry).as_stream() else {
            return;
        };
        if stream.dict.get(b"Subtype").ok().and_then(name_of) != Some(b"Form")
            || self.forms.contains(&id)
            || self.forms.len() >= MAX_FORM_DEPTH
        {
            return;
        }
        let Some(data) = stream_data(stream) else {
            return;
        };
        let form_resources = dict_get(doc, &stream.dict, b"Resources")
            .and_then(|o| o.as_dict().ok())
            .unwrap_or(resources);
        let matrix = dict_get(doc, &stream.dict, b"Matrix")
            .and_then(|o| o.as_array().ok())
            .and_then(|a| Matrix::from_operands(a))
            .unwrap_or(Matrix::IDENTITY);

        let saved = (
            self.gs.clone(),
            self.text_matrix,
            self.line_matrix,
            self.stack.len(),
        );
        self.gs.ctm = matrix.then(&self.gs.ctm);
        self.forms.push(id);
        self.run(&data, form_resources);
        self.forms.pop();
        self.stack.truncate(saved.3);
        (self.gs, self.text_matrix, self.line_matrix) = (saved.0, saved.1, saved.2);
        self.path = None;
        self.clip_pending = false;
    }
}
