//! `peerguard render oci`: an OCI image layout in Istio's compat Wasm format: structure, media
//! types, digests, and the extraction Istio's image fetcher performs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::{ok, peerguard, s};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn build(wasm: &Path, out: &Path, tar: &Path, tag: &str) -> Value {
    let o = ok(&["render", "oci", "--wasm", s(wasm), "--out", s(out), "--tar", s(tar), "--tag", tag]);
    serde_json::from_str(&o.stdout).unwrap()
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let b = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha(&b), hex, "blob content does not match its name");
    b
}

/// The module the tests package: the real one when built, else a minimal valid header.
fn module(dir: &Path) -> std::path::PathBuf {
    match peerguard_e2e::envoy::wasm_path() {
        Ok(p) => p,
        Err(_) => {
            let p = dir.join("m.wasm");
            std::fs::write(&p, b"\0asm\x01\0\0\0").unwrap();
            p
        }
    }
}

#[test]
fn oci_layout_has_the_compat_structure_media_types_and_digests() {
    let d = tempfile::tempdir().unwrap();
    let wasm_path = module(d.path());
    let wasm = std::fs::read(&wasm_path).unwrap();
    let (dir, tar) = (d.path().join("oci"), d.path().join("image.tar"));
    let summary = build(&wasm_path, &dir, &tar, "9.9.9");

    assert_eq!(std::fs::read_to_string(dir.join("oci-layout")).unwrap(), r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let m = &index["manifests"].as_array().unwrap()[..];
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m[0]["annotations"]["org.opencontainers.image.ref.name"], "9.9.9");
    let mdigest = m[0]["digest"].as_str().unwrap();
    assert_eq!(summary["manifestDigest"], mdigest, "printed digest");
    assert_eq!(summary["wasmPluginSha256"].as_str().unwrap(), &mdigest[7..]);
    assert_eq!(summary["pluginWasmSha256"].as_str().unwrap(), sha(&wasm));

    let manifest_bytes = blob(&dir, mdigest);
    assert_eq!(m[0]["size"], manifest_bytes.len());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let config_bytes = blob(&dir, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(manifest["config"]["size"], config_bytes.len());

    // Istio's compat variant: the last layer must be application/vnd.oci.image.layer.v1.tar+gzip,
    // a tar.gz in which the entry with base name plugin.wasm is the module.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "compat images have a single layer");
    let layer = &layers[0];
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let gz = blob(&dir, layer["digest"].as_str().unwrap());
    assert_eq!(layer["size"], gz.len());
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut tar_bytes).unwrap();
    let mut entries = BTreeMap::new();
    for e in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        entries.insert(name, b);
    }
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["plugin.wasm"]);
    assert_eq!(entries["plugin.wasm"], wasm, "plugin.wasm is not the module");
    assert_eq!(&entries["plugin.wasm"][..4], b"\0asm", "Istio's isValidWasmBinary");

    let config: Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", sha(&tar_bytes)));

    // Exactly the three blobs, nothing else.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> =
        [mdigest, manifest["config"]["digest"].as_str().unwrap(), layer["digest"].as_str().unwrap()]
            .iter()
            .map(|d| d[7..].to_string())
            .collect();
    want.sort();
    assert_eq!(names, want);

    // The tar holds the same layout, byte for byte.
    let mut in_tar = BTreeMap::new();
    for e in tar::Archive::new(std::fs::File::open(&tar).unwrap()).entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let name = e.path().unwrap().display().to_string();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            in_tar.insert(name, b);
        }
    }
    assert_eq!(in_tar.len(), 5, "{:?}", in_tar.keys());
    for (name, bytes) in &in_tar {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
}

#[test]
fn oci_image_is_reproducible_so_manifests_can_pin_its_digest() {
    let d = tempfile::tempdir().unwrap();
    let wasm = module(d.path());
    let a = build(&wasm, &d.path().join("a"), &d.path().join("a.tar"), "1");
    let b = build(&wasm, &d.path().join("b"), &d.path().join("b.tar"), "2");
    assert_eq!(a["manifestDigest"], b["manifestDigest"], "the tag must not change the manifest");
    assert_eq!(
        std::fs::read(d.path().join("a.tar")).unwrap().len(),
        std::fs::read(d.path().join("b.tar")).unwrap().len()
    );
    // The library computes the same digest that `render wasmplugin` puts into `sha256`.
    let img = peerguard_cli::render::oci::build(&std::fs::read(&wasm).unwrap(), "x").unwrap();
    assert_eq!(format!("sha256:{}", img.manifest_hex()), a["manifestDigest"].as_str().unwrap());
}

#[test]
fn oci_refuses_a_file_that_is_not_webassembly() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.wasm");
    std::fs::write(&p, b"#!/bin/sh\n").unwrap();
    let o = peerguard(&[
        "render",
        "oci",
        "--wasm",
        s(&p),
        "--out",
        s(&d.path().join("o")),
        "--tar",
        s(&d.path().join("o.tar")),
    ]);
    assert_eq!(o.code, 2);
}
