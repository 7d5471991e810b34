//! Page layout: glyphs become runs, runs become lines and blocks (table cells, line
//! fragments), and blocks are put in reading order by recursive XY-cuts.

use super::content::{Glyph, PageContent, Rect};
use std::collections::BTreeMap;

/// Below this share of the page, a clip rectangle is a table cell or text box whose text
/// belongs together; larger ones are page or column clips that say nothing.
const CELL_MAX_PAGE_SHARE: f32 = 0.5;
/// Horizontal gap, in font sizes, above which two runs are separate words.
const WORD_GAP: f32 = 0.15;
/// Horizontal gap, in font sizes, above which free text on one baseline is two blocks
/// (columns, or a table without cell clips).
const BLOCK_GAP: f32 = 1.5;
/// A gutter at least this wide (in font sizes) reads as a column break.
const GUTTER: f32 = 1.5;
/// Coordinates closer than this (in points) count as touching.
const TOUCH: f32 = 0.5;
/// XY-cut recursion beyond this depth falls back to sorting; real pages need a handful.
const MAX_CUT_DEPTH: usize = 48;

/// A line of text in reading order, with its vertical extent on the page.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub text: String,
    pub top: f32,
    pub bottom: f32,
    /// Starts a new block: a cell, a column, or a paragraph after a vertical gap.
    pub block_start: bool,
}

/// Glyphs that sit next to each other on one baseline.
#[derive(Debug, Clone)]
struct Run {
    text: String,
    x0: f32,
    x1: f32,
    y: f32,
    size: f32,
    last_x0: f32,
    last_len: usize,
}

impl Run {
    fn new(g: &Glyph) -> Run {
        Run {
            text: g.text.clone(),
            x0: g.x0,
            x1: g.x1,
            y: g.y,
            size: g.size,
            last_x0: g.x0,
            last_len: g.text.len(),
        }
    }

    /// Extends the run with a glyph that continues it; `false` if it does not.
    fn extend(&mut self, g: &Glyph) -> bool {
        let size = self.size.max(g.size);
        if (g.y - self.y).abs() > 0.2 * size || (g.size - self.size).abs() > 0.3 * size {
            return false;
        }
        // Fake bold and shadows draw the same glyph again at almost the same place.
        let last = self
            .text
            .get(self.text.len() - self.last_len..)
            .unwrap_or_default();
        if last == g.text && (g.x0 - self.last_x0).abs() < 0.15 * size {
            return true;
        }
        let gap = g.x0 - self.x1;
        if gap > WORD_GAP * size || gap < -0.3 * size {
            return false;
        }
        self.text.push_str(&g.text);
        self.x1 = self.x1.max(g.x1);
        self.last_x0 = g.x0;
        self.last_len = g.text.len();
        true
    }

    fn top(&self) -> f32 {
        self.y + 0.8 * self.size
    }

    fn bottom(&self) -> f32 {
        self.y - 0.2 * self.size
    }
}

/// Runs that share a baseline, left to right.
#[derive(Debug, Clone)]
struct TextLine {
    runs: Vec<Run>,
    y: f32,
    size: f32,
}

impl TextLine {
    fn bbox(&self) -> Rect {
        let x0 = self.runs.iter().map(|r| r.x0).fold(f32::INFINITY, f32::min);
        let x1 = self
            .runs
            .iter()
            .map(|r| r.x1)
            .fold(f32::NEG_INFINITY, f32::max);
        Rect {
            x0,
            y0: self.y - 0.2 * self.size,
            x1,
            y1: self.y + 0.8 * self.size,
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let mut prev: Option<&Run> = None;
        for run in &self.runs {
            if let Some(p) = prev {
                let size = p.size.max(run.size);
                if p.text == run.text && (run.x0 - p.x0).abs() < 0.3 * size {
                    continue;
                }
                if run.x0 - p.x1 > WORD_GAP * size {
                    out.push(' ');
                }
            }
            out.push_str(&run.text);
            prev = Some(run);
        }
        collapse_spaces(&out)
    }
}

/// A unit of the reading order: the text of one table cell, or one fragment of free text.
#[derive(Debug)]
struct Block {
    bbox: Rect,
    lines: Vec<TextLine>,
    size: f32,
    cell: bool,
}

/// The lines of one page in reading order.
pub(crate) fn page_lines(content: &PageContent, page: Rect) -> Vec<Line> {
    let page_area = (page.width() * page.height()).max(1.0);
    let is_cell: Vec<bool> = content
        .clips
        .iter()
        .map(|c| {
            c.width() * c.height() < CELL_MAX_PAGE_SHARE * page_area
                && c.width() > 1.0
                && c.height() > 1.0
        })
        .collect();
    let cell_of = |g: &Glyph| g.clip.filter(|&i| is_cell.get(i).copied().unwrap_or(false));

    // Runs, keyed by the cell they were clipped to.
    let mut runs: Vec<(Option<usize>, Run)> = Vec::new();
    for g in &content.glyphs {
        if g.text.trim().is_empty() && runs.last().is_none_or(|(_, r)| r.text.ends_with(' ')) {
            continue;
        }
        let cell = cell_of(g);
        let extended = match runs.last_mut() {
            Some((c, r)) => *c == cell && r.extend(g),
            None => false,
        };
        if !extended {
            runs.push((cell, Run::new(g)));
        }
    }

    let mut blocks = Vec::new();
    // Clip indices follow first appearance, so cells keep content order among equals.
    let mut cells: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
    let mut free = Vec::new();
    for (cell, run) in runs {
        if run.text.trim().is_empty() {
            continue;
        }
        match cell {
            Some(c) => cells.entry(c).or_default().push(run),
            None => free.push(run),
        }
    }
    for (clip, cell_runs) in cells {
        let lines = group_lines(cell_runs);
        let size = lines.iter().map(|l| l.size).fold(0.0, f32::max);
        let text_box = lines.iter().map(TextLine::bbox).reduce(Rect::union);
        if let (Some(bbox), Some(text_box)) = (content.clips.get(clip), text_box) {
            // A clip that does not hold the centre of its text was not drawn as that
            // text's cell (a stale clip, a shared text box); place the text by itself.
            let bbox = if bbox.contains_center(&text_box) {
                *bbox
            } else {
                text_box
            };
            blocks.push(Block {
                bbox,
                lines,
                size,
                cell: true,
            });
        }
    }
    for line in group_lines(free) {
        for fragment in split_fragments(line) {
            blocks.push(Block {
                bbox: fragment.bbox(),
                size: fragment.size,
                lines: vec![fragment],
                cell: false,
            });
        }
    }

    let mut order = Vec::with_capacity(blocks.len());
    xy_cut(&blocks, (0..blocks.len()).collect(), &mut order, 0);

    let mut out = Vec::new();
    let mut prev: Option<&Block> = None;
    for block in order.iter().filter_map(|&i| blocks.get(i)) {
        let new_block = match prev {
            None => true,
            Some(p) => {
                p.cell
                    || block.cell
                    || p.bbox.y0 - block.bbox.y1 > 0.9 * block.size.max(p.size)
                    || block.bbox.y1 > p.bbox.y1 + TOUCH
                    || block.bbox.x0 > p.bbox.x1
            }
        };
        for (k, line) in block.lines.iter().enumerate() {
            let text = line.text();
            if text.is_empty() {
                continue;
            }
            let bbox = line.bbox();
            out.push(Line {
                text,
                top: bbox.y1,
                bottom: bbox.y0,
                block_start: k == 0 && new_block,
            });
        }
        prev = Some(block);
    }
    out
}

/// Groups runs into lines: runs whose vertical extents mostly overlap share a line, so
/// superscripts and subscripts stay with their line.
fn group_lines(mut runs: Vec<Run>) -> Vec<TextLine> {
    runs.sort_by(|a, b| b.y.total_cmp(&a.y).then(a.x0.total_cmp(&b.x0)));
    let mut lines: Vec<TextLine> = Vec::new();
    for run in runs {
        let joins = lines.last().is_some_and(|line| {
            let (top, bottom) = (line.y + 0.8 * line.size, line.y - 0.2 * line.size);
            let overlap = top.min(run.top()) - bottom.max(run.bottom());
            overlap >= 0.5 * line.size.min(run.size)
        });
        match lines.last_mut() {
            Some(line) if joins => {
                if run.size > line.size {
                    line.size = run.size;
                    line.y = run.y;
                }
                line.runs.push(run);
            }
            _ => lines.push(TextLine {
                y: run.y,
                size: run.size,
                runs: vec![run],
            }),
        }
    }
    for line in &mut lines {
        line.runs.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    }
    lines
}

/// Splits a line of free text where a gap is too wide to be a word space.
fn split_fragments(line: TextLine) -> Vec<TextLine> {
    let mut out: Vec<TextLine> = Vec::new();
    let mut last_x1 = f32::NEG_INFINITY;
    for run in line.runs {
        let gap = run.x0 - last_x1;
        last_x1 = last_x1.max(run.x1);
        match out.last_mut() {
            Some(fragment) if gap <= BLOCK_GAP * line.size => fragment.runs.push(run),
            _ => out.push(TextLine {
                runs: vec![run],
                y: line.y,
                size: line.size,
            }),
        }
    }
    out
}

/// Recursive XY-cut. A region splits into columns at a clear gutter wider than any row
/// gap, else into rows wherever nothing spans a horizontal gap; regions that cannot be
/// cut (tables with merged cells) are read in bands of blocks with aligned tops, left to
/// right, which keeps each table row together.
fn xy_cut(blocks: &[Block], mut region: Vec<usize>, out: &mut Vec<usize>, depth: usize) {
    if region.len() <= 1 {
        out.extend(region);
        return;
    }
    let mut sizes: Vec<f32> = region
        .iter()
        .filter_map(|&i| blocks.get(i))
        .map(|b| b.size)
        .collect();
    sizes.sort_by(f32::total_cmp);
    let em = sizes.get(sizes.len() / 2).copied().unwrap_or(10.0).max(1.0);
    let bbox = |i: &usize| blocks.get(*i).map(|b| b.bbox);

    if depth < MAX_CUT_DEPTH {
        let (columns, column_gap) = split(
            &region,
            |i| bbox(i).map(|b| (b.x0, b.x1)),
            GUTTER * em,
            false,
        );
        let (rows, row_gap) = split(&region, |i| bbox(i).map(|b| (-b.y1, -b.y0)), -TOUCH, true);
        let parts = if columns.len() > 1 && (rows.len() <= 1 || column_gap > row_gap) {
            Some(columns)
        } else if rows.len() > 1 {
            Some(rows)
        } else {
            None
        };
        if let Some(parts) = parts {
            for part in parts {
                xy_cut(blocks, part, out, depth + 1);
            }
            return;
        }
    }

    region.sort_by(|a, b| {
        let (ta, tb) = (bbox(a).map_or(0.0, |r| r.y1), bbox(b).map_or(0.0, |r| r.y1));
        tb.total_cmp(&ta)
    });
    let mut band: Vec<usize> = Vec::new();
    let mut band_top = f32::INFINITY;
    for i in region {
        let top = bbox(&i).map_or(0.0, |r| r.y1);
        if band_top - top > 0.5 * em {
            flush_band(&mut band, blocks, out);
            band_top = top;
        }
        band.push(i);
    }
    flush_band(&mut band, blocks, out);
}

fn flush_band(band: &mut Vec<usize>, blocks: &[Block], out: &mut Vec<usize>) {
    band.sort_by(|a, b| {
        let (xa, xb) = (
            blocks.get(*a).map_or(0.0, |r| r.bbox.x0),
            blocks.get(*b).map_or(0.0, |r| r.bbox.x0),
        );
        xa.total_cmp(&xb)
    });
    out.append(band);
}

/// Splits blocks along one axis wherever the gap between consecutive extents exceeds
/// `min_gap`; `all_cuts` false keeps only cuts as wide as the widest. Returns the parts
/// in axis order and the widest gap.
fn split(
    region: &[usize],
    extent: impl Fn(&usize) -> Option<(f32, f32)>,
    min_gap: f32,
    all_cuts: bool,
) -> (Vec<Vec<usize>>, f32) {
    let mut items: Vec<(f32, f32, usize)> = region
        .iter()
        .filter_map(|i| extent(i).map(|(lo, hi)| (lo, hi, *i)))
        .collect();
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut gaps = Vec::new();
    let mut reach = f32::NEG_INFINITY;
    for (k, (lo, hi, _)) in items.iter().enumerate() {
        if k > 0 && lo - reach > min_gap {
            gaps.push((k, lo - reach));
        }
        reach = reach.max(*hi);
    }
    let widest = gaps.iter().map(|g| g.1).fold(f32::NEG_INFINITY, f32::max);
    let cuts: Vec<usize> = gaps
        .iter()
        .filter(|g| all_cuts || g.1 >= widest - TOUCH)
        .map(|g| g.0)
        .collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(items.len())) {
        parts.push(items[start..cut].iter().map(|t| t.2).collect());
        start = cut;
    }
    (parts, widest)
}

fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
