//! The headless-browser helper (harness::browser) on a page served by the harness's HTTP
//! server: the page's script runs (it fetches data from the server and writes it into
//! the DOM after a timer), and a screenshot of the requested size is written.

use std::sync::Arc;

use harness::browser::{dump_dom, png_size, screenshot};
use harness::envoy::scratch_dir;
use harness::http::{Handler, Response, Server};
use serde_json::json;

const PAGE: &str = r#"<!doctype html>
<html><head><title>browser helper</title>
<style>body { margin: 0; background: #0b5394; } #out { color: white; font: 24px sans-serif; }</style>
</head><body><p id="out">waiting</p>
<script>
  fetch("/data").then(r => r.json()).then(d => {
    setTimeout(() => { document.getElementById("out").textContent = "script wrote " + d.answer; }, 300);
  });
</script></body></html>"#;

fn page_server() -> Server {
    let handler: Handler = Arc::new(|req| match req.path_only() {
        "/" => Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(PAGE.as_bytes().to_vec())
            .into(),
        "/data" => Response::json(200, &json!({"answer": 42})).into(),
        _ => Response::text(404, "not found").into(),
    });
    Server::start("127.0.0.1:0", handler).unwrap()
}

#[test]
fn the_dom_dump_shows_what_the_pages_script_wrote() {
    let server = page_server();
    let dom = dump_dom(&format!("http://{}/", server.addr()), 2000).unwrap();
    assert!(dom.contains(r#"<p id="out">script wrote 42</p>"#), "{dom}");
    assert!(
        !PAGE.contains("script wrote 42"),
        "the text comes from the script alone"
    );
}

#[test]
fn a_screenshot_has_the_requested_size() {
    let server = page_server();
    let path = scratch_dir("screenshot").join("page.png");
    screenshot(&format!("http://{}/", server.addr()), &path, 640, 360, 1000).unwrap();
    assert_eq!(png_size(&path), Some((640, 360)));
    assert!(
        std::fs::metadata(&path).unwrap().len() > 1000,
        "a real image, not an empty one"
    );
}
