//! `just mesh` as a test: three services behind Istio-shaped sidecars, certificates from this
//! very `peerguard` binary, and a call matrix that must match the policies in envoy/mesh/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

#[test]
fn local_mesh_call_matrix_matches_the_policies() {
    let dir = tempfile::tempdir().unwrap();
    let rows = peerguard_e2e::mesh::run(Path::new(env!("CARGO_BIN_EXE_peerguard")), dir.path()).unwrap();
    let table = peerguard_e2e::mesh::table(&rows);
    assert!(rows.iter().all(|r| r.ok()), "{table}");
    assert_eq!(rows.len(), peerguard_e2e::mesh::EXPECTED.len());
    // Certificates came from `peerguard cert`: one mesh CA, a SPIFFE identity per service.
    for s in peerguard_e2e::mesh::SERVICES {
        assert!(dir.path().join(format!("certs/{}.pem", s.name)).is_file());
    }
}
