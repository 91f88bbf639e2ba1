//! The viewer page: `local/ui/index.html`, `app.js` and `app.css`, embedded in the binary
//! with `include_str!` (no external fonts or CDNs), served on `GET /` and `GET /ui/<file>`.

use crate::http::Response;

/// `(name, content type, content)` of every embedded file.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../ui/app.css")),
];

/// The page for `/` or a `/ui/<file>` path; `None` for any other path.
pub fn route(path: &str) -> Option<Response> {
    let name = match path {
        "/" | "/ui" | "/ui/" => "index.html",
        _ => path.strip_prefix("/ui/")?,
    };
    let Some((_, content_type, content)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return Some(Response::text(404, "no such file"));
    };
    Some(
        Response::new(200)
            .with_header("Content-Type", content_type)
            .with_header("Cache-Control", "no-cache")
            .with_body(content.as_bytes().to_vec()),
    )
}
