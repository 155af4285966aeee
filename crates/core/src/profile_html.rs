//! A profile as one self-contained HTML page: inline CSS and SVG charts, no scripts, no fonts
//! or images fetched from anywhere. The dataset and the file are named at the top; an overview
//! table links to one section per column.

use std::fmt::Write as _;

use crate::profile::{ColumnProfile, Count, Profile};

/// Text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Long values cut for display (the JSON keeps them whole).
fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        escape(s)
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{}…", escape(&cut))
    }
}

fn count(c: &Count) -> String {
    if c.estimated {
        format!("≈{} (estimated)", thousands(c.value))
    } else {
        thousands(c.value)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0 %".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 1e15 || (x != 0.0 && x.abs() < 1e-4) {
        format!("{x:.4e}")
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 8px}.sub{color:#5a6270;margin:0 0 16px}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:3px 10px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#f4f6f9;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
section.column{border:1px solid #dde1e7;border-radius:6px;padding:12px 16px;margin:14px 0;break-inside:avoid}
.grid{display:flex;flex-wrap:wrap;gap:8px 32px}.grid>div{min-width:300px;flex:1}
.note{color:#8a5a00;font-size:12px}.type{color:#5a6270;font-weight:400;font-size:13px}
svg{display:block;max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#3b4250}
a{color:#1f5fbf}";

/// A vertical bar chart (histogram): one bar per bin, the first and last bounds under it.
fn histogram_svg(c: &ColumnProfile) -> String {
    let bins = &c.histogram;
    let (w, h, pad) = (520.0, 150.0, 22.0);
    let max = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    let bw = (w - 2.0) / bins.len().max(1) as f64;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {}\" width=\"{w}\" role=\"img\" aria-label=\"histogram of {}\">",
        h + pad,
        escape(&c.name)
    );
    for (i, b) in bins.iter().enumerate() {
        let bh = (b.count as f64 / max) * (h - 4.0);
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4a7fd4\"><title>{} to {}: {}</title></rect>",
            1.0 + i as f64 * bw,
            h - bh,
            (bw - 1.0).max(0.5),
            escape(&b.from),
            escape(&b.to),
            thousands(b.count)
        );
    }
    if let (Some(first), Some(last)) = (bins.first(), bins.last()) {
        let _ = write!(
            s,
            "<line x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#9aa3b0\"/><text x=\"0\" y=\"{}\">{}</text><text x=\"{w}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            h + 15.0,
            short(&first.from),
            h + 15.0,
            short(&last.to)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: a label, a bar, a count.
fn bars_svg(label: &str, rows: &[(String, u64)], total: u64) -> String {
    let (w, row_h, label_w) = (520.0, 18.0, 190.0);
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let h = row_h * rows.len() as f64 + 4.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    for (i, (text, n)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let bw = (*n as f64 / max) * (w - label_w - 120.0);
        let shown: String = text.chars().take(28).collect();
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#5b9a68\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{} ({})</text>",
            label_w - 6.0,
            y + 12.0,
            if shown.is_empty() { "(empty)".to_string() } else { escape(&shown) },
            y + 2.0,
            row_h - 5.0,
            escape(text),
            thousands(*n),
            label_w + bw + 6.0,
            y + 12.0,
            thousands(*n),
            pct(*n, total)
        );
    }
    s.push_str("</svg>");
    s
}

fn column_section(i: usize, c: &ColumnProfile, rows: u64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<section class=\"column\" id=\"col-{i}\" data-column=\"{}\"><h2>{} <span class=\"type\">{}</span></h2><div class=\"grid\"><div><table>",
        escape(&c.name),
        escape(&c.name),
        escape(&c.ty)
    );
    let mut stat = |k: &str, v: String| {
        let _ = write!(s, "<tr><th>{k}</th><td class=\"n\">{v}</td></tr>");
    };
    stat("values", thousands(c.values));
    stat(
        "nulls",
        format!("{} ({})", thousands(c.nulls), pct(c.nulls, rows)),
    );
    stat(
        "refused by the spec",
        format!("{} ({})", thousands(c.invalid), pct(c.invalid, rows)),
    );
    stat("distinct", count(&c.distinct));
    if let Some(m) = &c.min {
        stat("min", short(m));
    }
    if let Some(m) = &c.max {
        stat("max", short(m));
    }
    if let Some(m) = c.mean {
        stat("mean", num(m));
    }
    if let Some(sd) = c.std_dev {
        stat("standard deviation", num(sd));
    }
    if let Some(l) = &c.lengths {
        stat(
            "length",
            format!("{} to {}, mean {}", l.min, l.max, num(l.mean)),
        );
    }
    for q in &c.quantiles {
        stat(&format!("p{}", num(q.q * 100.0)), short(&q.value));
    }
    s.push_str("</table>");
    if c.sampled {
        s.push_str("<p class=\"note\">Quantiles and histogram from a uniform sample of the column's values.</p>");
    }
    s.push_str("</div><div>");
    if !c.histogram.is_empty() {
        s.push_str("<h3>Histogram</h3>");
        s.push_str(&histogram_svg(c));
    }
    if c.top.first().is_some_and(|t| t.count <= 1) {
        s.push_str(if c.top_approximate {
            "<h3>Most frequent values</h3><p class=\"note\">No value stands out among too many distinct values to count each.</p>"
        } else {
            "<h3>Most frequent values</h3><p>Every value is distinct.</p>"
        });
    } else if !c.top.is_empty() {
        s.push_str("<h3>Most frequent values</h3>");
        let rows_: Vec<(String, u64)> = c.top.iter().map(|t| (t.value.clone(), t.count)).collect();
        s.push_str(&bars_svg(
            &format!("most frequent values of {}", c.name),
            &rows_,
            c.values,
        ));
        if c.top_approximate {
            s.push_str("<p class=\"note\">Too many distinct values to count each: these counts are lower bounds.</p>");
        }
    }
    if let Some(l) = &c.lengths {
        s.push_str("<h3>String lengths</h3>");
        let rows_: Vec<(String, u64)> = l
            .buckets
            .iter()
            .filter(|b| b.1 > 0)
            .map(|(k, n)| (format!("{k} chars"), *n))
            .collect();
        s.push_str(&bars_svg(
            &format!("string lengths of {}", c.name),
            &rows_,
            c.values,
        ));
    }
    s.push_str("</div></div></section>\n");
    s
}

/// The profile as a page.
pub fn html(p: &Profile) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Profile of {} ({})</title><style>{CSS}</style></head><body>\n<h1>Profile of dataset {}</h1><p class=\"sub\">File: <b>{}</b> · {} rows · {} columns",
        escape(&p.dataset),
        escape(&p.file),
        escape(&p.dataset),
        escape(&p.file),
        thousands(p.rows),
        p.columns.len()
    );
    if let Some(d) = &p.duplicate_keys {
        let _ = write!(
            s,
            " · primary key ({}): {} duplicate row(s)",
            escape(&p.primary_key.join(", ")),
            count(d)
        );
    }
    s.push_str("</p>\n<table><tr><th>column</th><th>type</th><th>values</th><th>nulls</th><th>refused</th><th>distinct</th><th>min</th><th>max</th></tr>");
    for (i, c) in p.columns.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td><a href=\"#col-{i}\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.ty),
            thousands(c.values),
            thousands(c.nulls),
            pct(c.nulls, p.rows),
            thousands(c.invalid),
            count(&c.distinct),
            c.min.as_deref().map(short).unwrap_or_default(),
            c.max.as_deref().map(short).unwrap_or_default(),
        );
    }
    s.push_str("</table>\n");
    for (i, c) in p.columns.iter().enumerate() {
        s.push_str(&column_section(i, c, p.rows));
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_are_grouped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(pct(1, 3), "33.3 %");
        assert_eq!(num(2.5), "2.5");
    }

    #[test]
    fn the_page_fetches_nothing_and_has_a_section_per_column() {
        let p = Profile {
            dataset: "d<1>".into(),
            file: "f.csv".into(),
            rows: 2,
            primary_key: Vec::new(),
            duplicate_keys: None,
            columns: vec![
                ColumnProfile {
                    name: "a".into(),
                    ty: "int".into(),
                    values: 2,
                    nulls: 0,
                    invalid: 0,
                    distinct: Count {
                        value: 2,
                        estimated: false,
                    },
                    min: None,
                    max: None,
                    range: None,
                    mean: None,
                    std_dev: None,
                    quantiles: Vec::new(),
                    histogram: Vec::new(),
                    sampled: false,
                    top: Vec::new(),
                    top_approximate: false,
                    lengths: None,
                };
                2
            ],
        };
        let page = html(&p);
        assert_eq!(page.matches("<section class=\"column\"").count(), 2);
        assert!(page.contains("d&lt;1&gt;") && !page.contains("d<1>"));
        for fetch in ["<script", "src=", "@import", "url(", "<link"] {
            assert!(!page.contains(fetch), "the page has {fetch}");
        }
    }
}
