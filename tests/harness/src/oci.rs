//! Reading what `scripts/package.sh` writes, independently of the script: OCI image layouts,
//! their tarballs and the module inside either variant of the Wasm image specification; and a
//! real registry (the CNCF distribution registry, Debian's `docker-registry`) on loopback.
//! Digests are computed by coreutils' `sha256sum`, not by the script's Python.

use crate::http;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// `sha256:<hex>` of `data`, by `sha256sum`.
pub fn digest(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("sha256sum output");
    writer.join().expect("writer").expect("write to sha256sum");
    let text = String::from_utf8(out.stdout).expect("sha256sum prints text");
    format!("sha256:{}", text.split_whitespace().next().unwrap_or_default())
}

/// One file of a tar archive, with the header fields reproducibility depends on.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: String,
    pub mode: u64,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub owner: String,
    pub data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let text: String = field.iter().take_while(|b| **b != 0).map(|b| *b as char).collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or(u64::MAX)
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// The regular files of a ustar archive, in order. Panics on anything else.
pub fn untar(archive: &[u8]) -> Vec<TarEntry> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = octal(&header[124..136]) as usize;
        assert!(
            matches!(header[156], b'0' | 0),
            "not a regular file: type {}",
            header[156]
        );
        let prefix = text(&header[345..500]);
        let name = text(&header[0..100]);
        let data = archive[at + 512..at + 512 + size].to_vec();
        entries.push(TarEntry {
            name: if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            },
            mode: octal(&header[100..108]),
            uid: octal(&header[108..116]),
            gid: octal(&header[116..124]),
            mtime: octal(&header[136..148]),
            owner: format!("{}:{}", text(&header[265..297]), text(&header[297..329])),
            data,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// The bytes a gzip stream holds.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}

/// An OCI image layout directory.
pub struct Layout(pub PathBuf);

impl Layout {
    /// The file `blobs/sha256/<hex>`, checked against its name.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let data = std::fs::read(self.0.join("blobs/sha256").join(hex)).expect("the blob is in the layout");
        assert_eq!(self::digest(&data), digest, "blob {hex} does not hash to its name");
        data
    }

    /// The digest, bytes and JSON of the one manifest `index.json` names.
    pub fn manifest(&self) -> (String, Vec<u8>, Value) {
        let index: Value = serde_json::from_slice(&std::fs::read(self.0.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
        let manifests = index["manifests"].as_array().expect("index.json lists manifests");
        assert_eq!(manifests.len(), 1, "{index}");
        let digest = manifests[0]["digest"].as_str().expect("a digest").to_string();
        let bytes = self.blob(&digest);
        assert_eq!(manifests[0]["size"], bytes.len(), "{index}");
        let json = serde_json::from_slice(&bytes).expect("the manifest is JSON");
        (digest, bytes, json)
    }
}

/// The module inside an image of either variant, as Istio's fetcher finds it: the raw
/// `WASM_LAYER` of the oci variant, else `plugin.wasm` in the last tar+gzip layer.
pub fn module_of(manifest: &Value, blob: impl Fn(&str) -> Vec<u8>) -> Vec<u8> {
    let layers = manifest["layers"].as_array().expect("layers");
    if let Some(layer) = layers.iter().find(|l| l["mediaType"] == WASM_LAYER) {
        return blob(layer["digest"].as_str().expect("digest"));
    }
    let last = layers.last().expect("at least one layer");
    assert_eq!(last["mediaType"], TAR_GZIP, "{manifest}");
    let tar = gunzip(&blob(last["digest"].as_str().expect("digest")));
    untar(&tar)
        .into_iter()
        .find(|e| e.name == "plugin.wasm")
        .expect("plugin.wasm in the layer")
        .data
}

/// A registry on 127.0.0.1, its storage in a scratch directory; stopped on drop.
pub struct Registry {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

/// `$DOCKER_REGISTRY`, else Debian's `/usr/bin/docker-registry` (scripts/setup.sh installs it).
pub fn registry_binary() -> PathBuf {
    std::env::var_os("DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

impl Registry {
    pub fn start(dir: &Path) -> Result<Registry, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(|e| format!("{e}"))?;
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).map_err(|e| e.to_string())?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  secret: test-only\n",
                storage.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e} (scripts/setup.sh installs it)", registry_binary().display()))?;
        let mut registry = Registry {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http::get(addr, "/v2/"), Ok(r) if r.status == 200) {
                return Ok(registry);
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(format!("the registry exited ({status}): {}", registry.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("the registry did not answer /v2/ in 30 s: {}", registry.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
