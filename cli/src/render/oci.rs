//! An OCI image layout of the filter in the "compat" Wasm image format that Istio's image fetcher accepts.
//!
//! Istio (`pkg/wasm/imagefetcher.go`, `extractOCIStandardImage`) takes the last layer of an OCI
//! image, requires the media type `application/vnd.oci.image.layer.v1.tar+gzip`, un-gzips and
//! un-tars it and uses the entry whose base name is `plugin.wasm`
//! (<https://github.com/solo-io/wasm/blob/master/spec/spec-compat.md>). The image is built
//! byte-for-byte deterministically (fixed mtimes, owner, gzip header), so the manifest digest is a
//! function of `plugin.wasm` alone: `render wasmplugin` computes the same digest from the module
//! without building anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// `oci-layout` file contents.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The compat variant's layer type (go-containerregistry `types.OCILayer`).
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file name Istio looks for inside the layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// One content-addressed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    /// Lowercase hex SHA-256 of the bytes.
    pub fn hex(&self) -> String {
        sha256_hex(&self.bytes)
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.hex())
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The image in memory: layer, config and manifest blobs plus the index that names the manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    pub index: Vec<u8>,
    /// SHA-256 of plugin.wasm itself.
    pub wasm_sha256: String,
}

impl Image {
    /// The manifest digest: what a registry reports, what `oci://...@sha256:` pins, and what
    /// Istio compares a WasmPlugin's `sha256` with for `oci://` URLs (`pkg/wasm/cache.go`).
    pub fn manifest_hex(&self) -> String {
        self.manifest.hex()
    }
}

/// Builds the compat image for `wasm`; `tag` becomes `org.opencontainers.image.ref.name` in the index.
pub fn build(wasm: &[u8], tag: &str) -> std::io::Result<Image> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a WebAssembly module (no \\0asm magic)"));
    }
    // The layer: a tar with one regular file, owned by root, mtime 0.
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_ustar();
        h.set_size(wasm.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, PLUGIN_FILE, wasm)?;
        b.finish()?;
    }
    let diff_id = format!("sha256:{}", sha256_hex(&tar_bytes));
    // GzBuilder writes mtime 0 and no file name: the bytes depend on the input only.
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar_bytes)?;
    let layer = Blob { media_type: MEDIA_LAYER, bytes: gz.finish()? };

    let config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "created": "1970-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "peerguard render oci: ADD plugin.wasm"}]
    });
    let config = Blob { media_type: MEDIA_CONFIG, bytes: to_bytes(&config)? };
    let wasm_sha256 = sha256_hex(wasm);
    let mut layer_desc = layer.descriptor();
    layer_desc["annotations"] = json!({"org.opencontainers.image.title": PLUGIN_FILE});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_desc],
        "annotations": {
            "org.opencontainers.image.title": "peerguard",
            "org.opencontainers.image.description": "peerguard proxy-wasm filter (Istio compat Wasm image: one layer holding plugin.wasm)",
            "io.peerguard.plugin.wasm.sha256": wasm_sha256,
        }
    });
    let manifest = Blob { media_type: MEDIA_MANIFEST, bytes: to_bytes(&manifest)? };
    let mut mdesc = manifest.descriptor();
    mdesc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = to_bytes(&json!({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [mdesc]}))?;
    Ok(Image { layer, config, manifest, index, wasm_sha256 })
}

fn to_bytes(v: &Value) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(std::io::Error::other)
}

/// Where [`write_layout`] put things.
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub tar: PathBuf,
}

/// Writes the image as an OCI image layout directory (`oci-layout`, `index.json`,
/// `blobs/sha256/<hex>`) and as a tar of that same layout (`oci-archive:` for skopeo).
pub fn write_layout(img: &Image, dir: &Path, tar_path: &Path) -> std::io::Result<Written> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let files = layout_files(img);
    for (rel, bytes) in &files {
        std::fs::write(dir.join(rel), bytes)?;
    }
    if let Some(parent) = tar_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = Vec::new();
    {
        let mut b = tar::Builder::new(&mut out);
        for d in ["blobs/", "blobs/sha256/"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_mtime(0);
            h.set_size(0);
            b.append_data(&mut h, d, std::io::empty())?;
        }
        for (rel, bytes) in &files {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, rel, bytes.as_slice())?;
        }
        b.finish()?;
    }
    std::fs::write(tar_path, out)?;
    Ok(Written { dir: dir.to_path_buf(), tar: tar_path.to_path_buf() })
}

/// The layout's files, relative path and contents.
pub fn layout_files(img: &Image) -> Vec<(String, Vec<u8>)> {
    let mut v =
        vec![("oci-layout".to_string(), OCI_LAYOUT.as_bytes().to_vec()), ("index.json".to_string(), img.index.clone())];
    for blob in [&img.layer, &img.config, &img.manifest] {
        v.push((format!("blobs/sha256/{}", blob.hex()), blob.bytes.clone()));
    }
    v
}
