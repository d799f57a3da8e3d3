//! A cheap guard against deeply nested YAML, run over the text before the parser sees it.
//!
//! The YAML deserializer refuses documents nested more than 128 levels, but only once the
//! parser has read the whole document, and the parser slows down with depth: 50,000 levels of
//! `{a: ` (250 KB) took 10 s to be refused. No Kubernetes object comes near (a Pod's deepest
//! fields are about a dozen levels), so a document deeper than [`MAX_DEPTH`] is refused here, in
//! one pass over the bytes.
//!
//! The scan estimates depth without parsing: block nesting from indentation and `- `/`? `/`: `
//! indicators, flow nesting from `[`/`{` and their closing brackets. It skips what cannot nest:
//! comments, quoted scalars, block scalars (`|`, `>`) and brackets inside plain scalars. It
//! matches the parser on every YAML file of this repository; unusual layouts (a plain scalar
//! continued on a line that starts with a bracket) may move it by a level, which the limit,
//! well above the deserializer's own, leaves room for.

use super::error::{DocLocation, IngestError};

/// Deepest nesting a document may have, as estimated by [`check`].
pub const MAX_DEPTH: usize = 200;

/// Fails when a document of `text` nests deeper than [`MAX_DEPTH`], naming the document and
/// the line and column where it does; `source` names the file.
pub fn check(source: &str, text: &str) -> Result<(), IngestError> {
    let Some(deep) = first_too_deep(text) else { return Ok(()) };
    Err(IngestError::Document {
        file: source.to_string(),
        location: Box::new(DocLocation { document: deep.document, ..DocLocation::default() }),
        message: format!(
            "nested more than {MAX_DEPTH} levels deep at line {}, column {}; no Kubernetes object nests \
             that deep, so the file is refused before parsing",
            deep.line, deep.column
        ),
    })
}

/// Where `text` first nests deeper than [`MAX_DEPTH`], if it does: for files that are not
/// Kubernetes objects (a `--config` file), whose errors are not [`IngestError`]s.
pub(crate) fn first_too_deep(text: &str) -> Option<Deep> {
    first_deeper_than(text, MAX_DEPTH)
}

/// Where nesting first passes the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deep {
    /// The document, from 1.
    pub(crate) document: usize,
    /// The line in the file, from 1.
    pub(crate) line: usize,
    /// The column, in characters, from 1.
    pub(crate) column: usize,
}

/// The first place in `text` nested deeper than `limit`, if any.
fn first_deeper_than(text: &str, limit: usize) -> Option<Deep> {
    let mut scan = Scan { limit, document: 1, ..Scan::default() };
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(column) = scan.line(line.as_bytes()) {
            let column = line.get(..column).map_or(column, |s| s.chars().count()) + 1;
            return Some(Deep { document: scan.document, line: i + 1, column });
        }
    }
    None
}

/// A block collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// A mapping, opened by its first `key: `.
    Map,
    /// A sequence (or complex-key entries), opened by its first `- ` (`? `, `: `).
    Seq,
}

/// A quoted scalar the scan is inside of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

/// The scan's state between lines.
#[derive(Debug, Default)]
struct Scan {
    limit: usize,
    /// The current document, from 1.
    document: usize,
    /// Whether the current document has content yet (a `---` before any starts no new one).
    content: bool,
    /// The open block collections, by column.
    indents: Vec<(usize, Block)>,
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Inside a quoted scalar that spans lines.
    quote: Option<Quote>,
    /// Inside a block scalar: its lines are those indented more than this column (-1 at the
    /// top level), and they hold text, not structure.
    block_scalar: Option<isize>,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether `line[i]` is an indicator (`-`, `?`, `:`) followed by a blank or the end.
fn indicator_at(line: &[u8], i: usize) -> bool {
    matches!(line.get(i), Some(b'-' | b'?' | b':')) && line.get(i + 1).is_none_or(|b| is_blank(*b))
}

fn skip_blanks(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|b| is_blank(*b)) {
        i += 1;
    }
    i
}

impl Scan {
    /// Scans one line (without its end); `Some(byte column)` where nesting passes the limit.
    fn line(&mut self, line: &[u8]) -> Option<usize> {
        if let Some(rest) = self.document_marker(line) {
            return self.content_from(line, rest, -1);
        }
        if let Some(parent) = self.block_scalar {
            let indent = line.iter().take_while(|b| **b == b' ').count();
            if indent == line.len() || indent as isize > parent {
                return None;
            }
            self.block_scalar = None;
        }
        if self.quote.is_some() || self.flow > 0 {
            // Inside a quoted scalar or flow collection that spans lines, indentation means
            // nothing and a line break is a blank.
            return self.scan(line, 0, Node { start: true, col: 0, parent: -1 });
        }
        let indent = line.iter().take_while(|b| **b == b' ').count();
        if indent == line.len() || line[indent] == b'#' || (indent == 0 && line[0] == b'%') {
            return None; // blank, comment, or a directive (`%YAML`)
        }
        self.close_blocks(indent, indicator_at(line, indent));
        self.content_from(line, indent, indent as isize)
    }

    /// Closes the block collections a line at `indent` is not in. At the same column a mapping
    /// stays open (the line is its next key, or a `- ` entry of a sequence under its last key,
    /// which YAML allows at the key's own indentation); a sequence stays open for an `entry`.
    fn close_blocks(&mut self, indent: usize, entry: bool) {
        while let Some(&(col, block)) = self.indents.last() {
            if col < indent || (col == indent && (block == Block::Map || entry)) {
                return;
            }
            self.indents.pop();
        }
    }

    /// At a `---` or `...` line: starts the next document and returns where the rest of the
    /// line begins; `None` on any other line.
    fn document_marker(&mut self, line: &[u8]) -> Option<usize> {
        let marker = line.starts_with(b"---") || line.starts_with(b"...");
        if !marker || line.get(3).is_some_and(|b| !is_blank(*b)) {
            return None;
        }
        if self.content {
            self.document += 1;
            self.content = false;
        }
        self.indents.clear();
        self.flow = 0;
        self.quote = None;
        self.block_scalar = None;
        Some(3)
    }

    /// Block structure from column `i`: each `- `, `? ` or `: ` entry opens a level; then the
    /// node after them. `parent` is the column of the node that owns what follows.
    fn content_from(&mut self, line: &[u8], mut i: usize, mut parent: isize) -> Option<usize> {
        i = skip_blanks(line, i);
        if i >= line.len() || line[i] == b'#' {
            return None;
        }
        self.content = true;
        while indicator_at(line, i) {
            if self.open_block(i, Block::Seq) {
                return Some(i);
            }
            parent = i as isize;
            i = skip_blanks(line, i + 1);
        }
        self.scan(line, i, Node { start: true, col: i, parent })
    }

    /// Opens a `block` collection at column `col`, unless it is open; whether nesting passes
    /// the limit.
    fn open_block(&mut self, col: usize, block: Block) -> bool {
        if self.indents.last() != Some(&(col, block)) {
            self.indents.push((col, block));
        }
        self.depth() > self.limit
    }

    fn depth(&self) -> usize {
        self.indents.len() + self.flow
    }

    /// Flow brackets, mapping keys, quotes, comments and block scalar headers from column `i`.
    fn scan(&mut self, line: &[u8], mut i: usize, mut node: Node) -> Option<usize> {
        let mut blank_before = i == 0 || line.get(i - 1).is_some_and(|b| is_blank(*b));
        while i < line.len() {
            if let Some(quote) = self.quote {
                i = self.close_quote(line, i, quote);
                (node.start, blank_before) = (false, false);
                continue;
            }
            let b = line[i];
            let flow = self.flow > 0;
            match b {
                b'#' if blank_before => return None,
                b'[' | b'{' if node.start || flow => {
                    self.flow += 1;
                    if self.depth() > self.limit {
                        return Some(i);
                    }
                    node.start = true;
                }
                b']' | b'}' if flow => {
                    self.flow -= 1;
                    node.start = false;
                }
                b',' if flow => node.start = true,
                b'\'' | b'"' if node.start => {
                    let quote = if b == b'"' { Quote::Double } else { Quote::Single };
                    self.quote = Some(quote);
                    i = self.close_quote(line, i + 1, quote);
                    (node.start, blank_before) = (false, false);
                    continue;
                }
                b'|' | b'>' if node.start && !flow => {
                    self.block_scalar = Some(node.parent);
                    return None;
                }
                b'!' | b'&' | b'*' if node.start => {
                    // A tag or an anchor leaves the node still to come; an alias is a node.
                    let ends = |c: &u8| is_blank(*c) || (flow && b",[]{}".contains(c));
                    while line.get(i).is_some_and(|c| !ends(c)) {
                        i += 1;
                    }
                    (node.start, blank_before) = (b != b'*', false);
                    continue;
                }
                b':' if !flow && indicator_at(line, i) => {
                    // A block mapping's key: the mapping is a level, and owns what follows.
                    if self.open_block(node.col, Block::Map) {
                        return Some(node.col);
                    }
                    (node.start, node.parent) = (true, node.col as isize);
                }
                b'-' | b'?' | b':' if indicator_at(line, i) || (b == b':' && flow) => node.start = true,
                _ if is_blank(b) => {}
                _ => node.start = false,
            }
            blank_before = is_blank(b);
            i += 1;
        }
        None
    }

    /// Past the end of the quoted scalar open at `i` (or the end of the line, still inside).
    fn close_quote(&mut self, line: &[u8], mut i: usize, quote: Quote) -> usize {
        while i < line.len() {
            match (quote, line[i]) {
                (Quote::Double, b'\\') => i += 2,
                (Quote::Double, b'"') => {
                    self.quote = None;
                    return i + 1;
                }
                (Quote::Single, b'\'') if line.get(i + 1) == Some(&b'\'') => i += 2,
                (Quote::Single, b'\'') => {
                    self.quote = None;
                    return i + 1;
                }
                _ => i += 1,
            }
        }
        line.len()
    }
}

/// Where a scan of one line stands with respect to the node it is in.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// A node may begin here: a bracket or a quote opens something.
    start: bool,
    /// The column where the line's block node begins (after `- ` entries).
    col: usize,
    /// The column of the node that owns what follows, for block scalars (-1 at the top).
    parent: isize,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::Deserialize;

    use super::*;

    /// The estimated depth of `text`: the least limit it passes.
    fn depth(text: &str) -> usize {
        (0..=MAX_DEPTH + 2).find(|&limit| first_deeper_than(text, limit).is_none()).unwrap_or(usize::MAX)
    }

    #[test]
    fn deep_flow_and_block_nesting_is_refused_with_its_place() {
        let flow = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        let e = check("deep.yaml", &flow).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deep.yaml: document 1: nested more than 200 levels deep at line 1, column 201; no Kubernetes \
             object nests that deep, so the file is refused before parsing"
        );
        let maps = format!("kind: Pod\nspec: {}1{}\n", "{a: ".repeat(50_000), "}".repeat(50_000));
        assert!(check("m.yaml", &maps).unwrap_err().to_string().contains("at line 2, column "));
        let dashes = format!("a: 1\n---\n{}x\n", "- ".repeat(50_000));
        let e = check("d.yaml", &dashes).unwrap_err().to_string();
        assert!(e.starts_with("d.yaml: document 2: nested more than 200 levels deep at line 3, column "), "{e}");
        let mut block = String::new();
        for level in 0..250 {
            block.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        let e = check("b.yaml", &block).unwrap_err().to_string();
        assert!(e.contains("at line 201, column 201"), "{e}");
    }

    #[test]
    fn the_estimate_follows_the_true_depth() {
        assert_eq!(depth(&format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))), MAX_DEPTH);
        assert_eq!(depth("a: 1\nb: {c: [1, {d: 2}]}\n"), 4);
        assert_eq!(depth("a:\n  b:\n    c: 1\n  e: 2\nf: 3\n"), 3);
        assert_eq!(depth("- - - x\n- - {a: 1}\n"), 3);
        assert_eq!(depth("- name: a\n  ports:\n  - port: 80\n"), 4);
        assert_eq!(depth("a:\n- b: [1, 2]\n- c\nd: 1\n"), 4);
        assert_eq!(depth("k:\n- k:\n  - k:\n    - k: 1\n  - 2\nj: 3\n"), 7);
    }

    #[test]
    fn brackets_that_open_nothing_are_not_counted() {
        let many = "[{".repeat(300);
        for text in [
            format!("a: '{many}'\nb: \"{many}\\\"\"\n"),
            format!("a: \"first line\n  {many}\n  last\"\nb: 'it''s {many}\n'\n"),
            format!("a: 1 # {many}\n# {many}\n"),
            format!("script: |\n  {many}\n  more {many}\n\n  end\nnext: 1\n- >-\n {many}\n"),
            format!("cmd: echo {many}\nurl: a#{many}\n"),
            format!("a: !tag '{many}'\nb: [x, '{many}', \"{many}\", y # {many}\n  ]\n"),
        ] {
            assert!(depth(&text) < 5, "{text}");
        }
    }

    #[test]
    fn a_block_scalar_ends_where_its_indentation_does() {
        let text = format!("a:\n  s: |\n    {}\n  t: {}\n", "[".repeat(300), "[".repeat(300));
        assert_eq!(first_deeper_than(&text, MAX_DEPTH).map(|d| d.line), Some(4));
    }

    /// The depth of the deepest document of `text`, as the parser sees it.
    fn true_depth(text: &str) -> usize {
        fn of(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Array(a) => 1 + a.iter().map(of).max().unwrap_or(0),
                serde_json::Value::Object(m) => 1 + m.values().map(of).max().unwrap_or(0),
                _ => 0,
            }
        }
        let documents = serde_yaml_ng::Deserializer::from_str(text);
        documents.map(|d| of(&serde_json::Value::deserialize(d).unwrap())).max().unwrap_or(0)
    }

    #[test]
    fn the_estimate_matches_the_parser_on_awkward_yaml() {
        for text in [
            "a: [1,\n  [2, {b: [3]}],\n  4]\nc: 5\n",
            "\"quoted key\": {x: 1}\n'single': [[1]]\n",
            "anchors: &a {x: [1]}\nref: *a\ntagged: !!map {y: [2]}\n",
            "s: |-\n  [[[\n   {{{\nt:\n- >\n  ]]\n- [u]\n",
            "--- {a: [1]}\n--- [[[2]]]\n...\n---\nb: c\n",
            "? complex\n: value\nlist:\n- - - [x]\n",
            "a:\r\n  b: [1]\r\n",
        ] {
            assert!(depth(text).abs_diff(true_depth(text)) <= 1, "{text}: {} vs {}", depth(text), true_depth(text));
        }
    }

    #[test]
    fn every_yaml_file_of_the_repository_is_estimated_within_a_level() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        let mut dirs = vec![root.join("manifests"), root.join("scheduler/src"), root.join("tests")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 10, "{files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let (estimate, depth) = (depth(&text), true_depth(&text));
            assert!(estimate.abs_diff(depth) <= 1 && depth < 20, "{}: {estimate} vs {depth}", f.display());
        }
    }

    #[test]
    fn read_objects_refuses_deep_yaml_before_parsing() {
        let text = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        let e = super::super::read_objects("deep.yaml", &text).unwrap_err();
        assert!(e.to_string().contains("nested more than 200 levels deep"), "{e}");
    }
}
