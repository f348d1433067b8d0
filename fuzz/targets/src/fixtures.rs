//! Certificate fixtures from `policy/tests/fixtures` and the fixed policies the targets decide with.

/// 2030-06-01T12:00:00Z, the instant the fixtures are built around (as in policy/tests).
pub(crate) const NOW: i64 = 1_906_545_600;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../policy/tests/fixtures/", $name))
    };
}

pub(crate) const ROOT: &str = fixture!("root-ca.pem");
pub(crate) const INTERMEDIATE: &str = fixture!("intermediate-ca.pem");
pub(crate) const ADMIN_CA: &str = fixture!("admin-ca.pem");
pub(crate) const HEALTHY: &str = fixture!("healthy.pem");
pub(crate) const ADMIN: &str = fixture!("admin.pem");
pub(crate) const EXPIRED: &str = fixture!("expired.pem");
pub(crate) const REVOKED: &str = fixture!("revoked.pem");
pub(crate) const LONG_LIVED: &str = fixture!("long-lived.pem");
pub(crate) const SELF_SIGNED: &str = fixture!("self-signed.pem");
pub(crate) const CRL_REVOKES_LEAF: &str = fixture!("crl-intermediate-revokes-leaf.pem");
pub(crate) const CRL_ROOT_EMPTY: &str = fixture!("crl-root-empty.pem");
pub(crate) const CRL_OTHER_ISSUER: &str = fixture!("crl-admin-ca-revokes-leaf-serial.pem");

/// A fixed policy built once per process. One that does not build is a defect of the target
/// itself, reported like any finding (fuzz targets fail by panicking; that is their purpose).
#[allow(clippy::panic)]
pub(crate) fn built<'a, T>(built: &'a Result<T, String>, what: &str) -> &'a T {
    match built {
        Ok(t) => t,
        Err(e) => panic!("{what} does not build: {e}"),
    }
}
