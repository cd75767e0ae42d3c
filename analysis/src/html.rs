//! The report page: one self-contained HTML file (inline SVG and CSS, no script, nothing
//! fetched), laid out to be read on a laptop screen.

use std::fmt::Write;

/// `text` with the five characters that HTML gives meaning to escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as a table shows it: whole numbers with thousands separators, others with four
/// significant digits.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    // Four significant digits leave no decimals from 1,000 up: those are shown whole.
    let value = if value.abs() >= 999.5 && value.abs() < 1e15 {
        value.round()
    } else {
        value
    };
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        return if value < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        };
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    format!("{value:.decimals$}")
}

/// Builds a page from sections of HTML.
#[derive(Debug, Default)]
pub struct Page {
    body: String,
}

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; margin: 0 auto; padding: 1em 2em;
  max-width: 1500px; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
  border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table#run td, table#expectations td:nth-child(2) { text-align: left; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
td.pass { color: #1a7f37; font-weight: bold; } td.fail { color: #c62828; font-weight: bold; }
code, pre { font-family: 'DejaVu Sans Mono', monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
figure { margin: 0; border: 1px solid #e4e4e4; padding: 0.4em; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85em; color: #555; }
.scroll { overflow-x: auto; }
";

impl Page {
    pub fn heading(&mut self, level: u8, text: &str) {
        let _ = writeln!(self.body, "<h{level}>{}</h{level}>", escape(text));
    }

    /// Raw HTML, which the caller has escaped.
    pub fn raw(&mut self, html: &str) {
        self.body.push_str(html);
        self.body.push('\n');
    }

    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", escape(text));
    }

    /// A table; each cell is (text, CSS class or "").
    pub fn table(&mut self, id: &str, header: &[String], rows: &[Vec<(String, &str)>]) {
        let _ = write!(
            self.body,
            "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
            escape(id)
        );
        for cell in header {
            let _ = write!(self.body, "<th>{}</th>", escape(cell));
        }
        self.body.push_str("</tr></thead><tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for (text, class) in row {
                if class.is_empty() {
                    let _ = write!(self.body, "<td>{}</td>", escape(text));
                } else {
                    let _ = write!(self.body, "<td class=\"{class}\">{}</td>", escape(text));
                }
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table></div>\n");
    }

    /// The whole document.
    pub fn finish(self, title: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(title),
            self.body
        )
    }
}

/// An SVG document without its XML declaration, to be placed inside HTML.
pub fn inline_svg(svg: &str) -> &str {
    let trimmed = svg.trim_start();
    match trimmed.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map_or(trimmed, |end| rest[end + 2..].trim_start()),
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(-1000.0), "-1,000");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.99712), "0.9971");
        assert_eq!(number(446.27), "446.3");
        assert_eq!(number(143280412.25), "143,280,412");
        assert_eq!(number(-11981.5), "-11,982");
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
    }
}
