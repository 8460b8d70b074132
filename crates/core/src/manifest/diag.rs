//! Manifest diagnostics: one problem, its code, the span it points at in `comfy.toml`, and a help
//! line. Rendering (colour, width) is the CLI's business.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// The manifest's text with its file name, shared by all diagnostics of one file.
pub type Source = Arc<NamedSource<String>>;

/// One problem in a manifest.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Short stable identifier, shown as `manifest::<code>`.
    pub code: &'static str,
    pub message: String,
    pub span: Range<usize>,
    pub label: String,
    pub help: Option<String>,
    pub source: Source,
}

impl Problem {
    pub fn new(
        source: &Source,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            message: elide(message.into()),
            span,
            label: "here".to_owned(),
            help: None,
            source: source.clone(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Messages quote what the manifest says; a value of 70,000 characters is shortened to its ends.
const MAX_MESSAGE: usize = 400;

fn elide(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE {
        return message;
    }
    let head: String = message.chars().take(MAX_MESSAGE / 2).collect();
    let tail: Vec<char> = message.chars().rev().take(MAX_MESSAGE / 4).collect();
    let tail: String = tail.into_iter().rev().collect();
    format!("{head}…{tail}")
}

/// Lines longer than this are not drawn in a snippet: the renderer pads with widths that overflow
/// on lines over 65,535 bytes (it panicked on such manifests), and nobody reads such a line.
const MAX_SNIPPET_LINE: usize = 4096;

impl Problem {
    /// Whether the snippet can be drawn: no line of the manifest is too long.
    fn drawable(&self) -> bool {
        self.source
            .inner()
            .split('\n')
            .all(|l| l.len() <= MAX_SNIPPET_LINE)
    }

    /// 1-based line and column of the span's start.
    fn position(&self) -> (usize, usize) {
        let text = self.source.inner();
        let start = self.span.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.drawable() {
            // No snippet will show where: say it in words.
            let (line, column) = self.position();
            write!(
                f,
                " (at line {line}, column {column}; a line over {MAX_SNIPPET_LINE} bytes is not shown)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("manifest::{}", self.code)))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.drawable().then_some(&*self.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.drawable() {
            return None;
        }
        let len = self.span.end.saturating_sub(self.span.start);
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some(self.label.clone()),
            self.span.start,
            len,
        ))))
    }
}
