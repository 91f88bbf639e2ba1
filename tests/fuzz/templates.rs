//! Trace templates on their own: templates as the exchanges use them (placeholders of
//! every kind, text with its braces doubled), their text then mutated, parsed directly.
//! A template that parses prints back to itself (placeholders as `{name}`, braces in text
//! doubled), so what is rendered is what was written; an error is one line without
//! control characters (it ends up in Envoy's log as part of a configuration error).

use crate::exchanges::template;
use crate::mutate::{edits, mutate_string};
use crate::runner::{fuzz, show, Findings, Rng};
use envoy_appinsights::config::{Field, Segment, Template};

/// A template as its author would write it: the canonical form of what it parsed into.
fn print(t: &Template) -> String {
    let mut out = String::new();
    for segment in &t.segments {
        match segment {
            Segment::Text(text) => out.push_str(&text.replace('{', "{{").replace('}', "}}")),
            Segment::Field(field) => {
                let name = match field {
                    Field::Method => "request.method".to_string(),
                    Field::Path => "request.path".to_string(),
                    Field::Url => "request.url".to_string(),
                    Field::RequestHeader(h) => format!("request.header.{h}"),
                    Field::ResponseHeader(h) => format!("response.header.{h}"),
                    Field::Status => "response.status".to_string(),
                    Field::Route => "route".to_string(),
                    Field::Api => "api".to_string(),
                    Field::Operation => "operation".to_string(),
                    Field::OperationId => "operation_id".to_string(),
                    Field::DurationMs => "duration_ms".to_string(),
                    Field::Cluster => "cluster".to_string(),
                    Field::Metadata(path) => path.placeholder(),
                };
                out.push('{');
                out.push_str(&name);
                out.push('}');
            }
        }
    }
    out
}

fn template_input(rng: &mut Rng) -> String {
    let mut t = template(rng);
    for _ in 0..edits(rng) {
        t = mutate_string(rng, &t);
    }
    t
}

fn check_template(text: &str, f: &mut Findings) {
    match Template::parse(text) {
        Ok(t) => {
            f.note("parsed");
            let printed = print(&t);
            let again = Template::parse(&printed);
            f.check(
                "a parsed template prints back to itself",
                again.as_ref() == Ok(&t),
                || format!("{t:?} printed as {printed:?} parses as {again:?}"),
            );
            f.check(
                "a parsed template has no empty text and no two texts in a row",
                t.segments
                    .windows(2)
                    .all(|w| !matches!(w, [Segment::Text(_), Segment::Text(_)]))
                    && t.segments
                        .iter()
                        .all(|s| !matches!(s, Segment::Text(x) if x.is_empty())),
                || format!("{t:?}"),
            );
        }
        Err(e) => {
            f.note("refused");
            f.check(
                "a template error is one line without control characters",
                !e.chars().any(char::is_control) && e.chars().count() <= 1025,
                || format!("{e:?}"),
            );
        }
    }
}

#[test]
fn trace_templates() {
    let report = fuzz(
        "trace_templates",
        3000,
        template_input,
        |t| show(t.as_bytes()),
        |t, f| check_template(t, f),
    );
    report.assert_holds(|_| true);
    assert!(
        report.noted("parsed") * 5 >= report.cases && report.noted("refused") * 10 >= report.cases,
        "the mutators should produce both: {:?}",
        report.notes
    );
}
