#!/usr/bin/env python3
"""Regenerates fuzz/seeds/<target>/ from the repository's own policies and certificate fixtures.

    python3 fuzz/seeds/generate.py

Idempotent: it rewrites only the files it owns (prefix `gen-`), so inputs added by hand or
picked from `cargo fuzz cmin` (prefix `min-`) stay. Sources: envoy/ and istio/ policies,
policy/tests/fixtures certificates and CRLs, XFCC in the shape Envoy writes it (see
tests/tests/e2e_istio_shaped.rs), and the attack paths from PRODUCT.md "Paths".
"""
import base64
import hashlib
import json
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
SEEDS = REPO / "fuzz" / "seeds"
FIX = REPO / "policy" / "tests" / "fixtures"


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"gen-{name}").write_bytes(data)


def clear(target):
    d = SEEDS / target
    if d.is_dir():
        for f in d.glob("gen-*"):
            f.unlink()


def pem_ders(text):
    return [base64.b64decode("".join(m.split()))
            for m in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)]


def url_encode(s):
    """As Envoy writes XFCC `Cert=` (and as tests/tests/e2e_istio_shaped.rs mimics it)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.~") else "%%%02X" % ord(c) for c in s)


def fixture(name):
    return (FIX / name).read_text()


# --- policy_compile -----------------------------------------------------------------------------
def policies():
    t = "policy_compile"
    clear(t)
    for p in ["envoy/policy.yaml", "envoy/front-proxy-policy.yaml", "istio/peerguard/policy.yaml",
              "istio/peerguard/gateway-policy.yaml", "envoy/linkerd-ingress-policy.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "envoy/mesh").glob("*.yaml"))]:
        write(t, p.replace("/", "-"), (REPO / p).read_text())
    docs = {
        "empty.json": {},
        "federation.json": {"trustDomainAliases": ["old.local", "*.partner.example"], "certificate": {"trustBundles": {
            "cluster.local": [fixture("root-ca.pem")],
            "partner.example": [(REPO / "policy/tests/fixtures/federation/partner-bundle.json").read_text()],
            "eu.partner.example": [json.loads((REPO / "policy/tests/fixtures/federation/partner-bundle.json").read_text())]}}},
        "every-when-key.json": {"mtls": "permissive", "policies": [{"name": "w", "action": "ALLOW", "rules": [{"when": [
            {"key": k, "values": ["a*"], "notValues": ["*b"]} for k in [
                "request.headers[x-env]", "source.principal", "source.namespace", "destination.port", "connection.sni",
                "cert.subject", "cert.subject.cn", "cert.subject.o", "cert.subject.ou", "cert.issuer", "cert.issuer.cn",
                "cert.issuer.o", "cert.san.uri", "cert.san.dns", "cert.serial", "cert.sha256", "cert.spki.sha256"]]}]}]},
        "every-operation-field.json": {"policies": [{"name": "ops", "action": "DENY", "rules": [{"to": [{"operation": {
            "hosts": ["api.example", "*.example"], "notHosts": ["admin.example"], "ports": ["8080", 443, "08443"],
            "notPorts": [9090], "methods": ["GET", "POST"], "notMethods": ["DELETE"],
            "paths": ["/api/*", "/files/{**}", "/api/{*}/admin", "*"], "notPaths": ["/api/public*"]}}]}]}]},
        "every-source-field.json": {"trustDomains": ["cluster.local", "old.local"], "identity": ["spiffe", "dns", "subject"],
            "policies": [{"name": "src", "action": "AUDIT", "rules": [{"from": [{"source": {
                "principals": ["cluster.local/ns/a/sa/*"], "notPrincipals": ["*/sa/admin"], "namespaces": ["a", "b"],
                "notNamespaces": ["kube-system"], "trustDomains": ["cluster.local"], "notTrustDomains": ["evil.local"]}}]}]}]},
        "dry-run-and-modes.json": {"mode": "dryRun", "mtls": "permissive", "pathNormalization": "reject",
            "allowPathParameters": True, "denyResponse": {"status": 451, "body": "no", "exposeReason": True},
            "identityHeader": "x-id", "policies": [
                {"name": "a", "action": "ALLOW", "dryRun": True, "rules": []},
                {"name": "d", "action": "DENY", "rules": [{}]}]},
        "certificate-everything.json": {"certificate": {
            "maxLifetime": "24h", "minRemaining": "5m", "requireClientAuth": True, "rejectSelfSigned": True,
            "keyTypes": ["ecdsaP256", "ecdsaP384", "ecdsaP521", "ed25519", "rsa2048", "rsa3072", "rsa4096"],
            "issuers": ["O=cluster.local", "CN=intermediate-ca*"],
            "spkiPins": ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="],
            "certPins": ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
            "trustAnchors": [fixture("root-ca.pem")], "intermediates": [fixture("intermediate-ca.pem")],
            "crls": [fixture("crl-intermediate-revokes-leaf.pem"), fixture("crl-root-empty.pem")],
            "revocation": {"depth": "chain", "unknownStatus": "deny", "staleStatus": "allow"}},
            "certificateRules": [{"name": "admin", "to": [{"operation": {"paths": ["/admin/*"]}}],
                                  "require": {"maxLifetime": "1h", "issuers": ["CN=admin-ca*"]}}]},
        "durations.json": {"certificate": {"maxLifetime": "90s", "minRemaining": "15m"},
                           "certificateRules": [{"name": "r", "require": {"maxLifetime": "2400h"}}]},
        # Documents that must be refused, each for one reason.
        "bad-unknown-key.json": {"policies": [{"name": "x", "rules": [{"from": [{"source": {"principal": ["a"]}}]}]}]},
        "bad-sequence-for-mapping.json": {"policies": [{"name": "x", "rules": [[]]}]},
        "bad-empty-list.json": {"policies": [{"name": "x", "rules": [{"to": [{"operation": {"paths": []}}]}]}]},
        "bad-inner-wildcard.json": {"policies": [{"name": "x", "rules": [{"to": [{"operation": {"paths": ["/a*b"]}}]}]}]},
        "bad-port.json": {"policies": [{"name": "x", "rules": [{"to": [{"operation": {"ports": ["70000", "-1", "x"]}}]}]}]},
        "bad-istio-fields.json": {"policies": [{"name": "x", "action": "CUSTOM", "provider": {"name": "p"},
            "selector": {"matchLabels": {"a": "b"}}, "rules": [{"from": [{"source": {"requestPrincipals": ["*"], "ipBlocks": ["10.0.0.0/8"]}}]}]}]},
        "bad-deny-without-rules.json": {"policies": [{"name": "x", "action": "DENY"}], "trustDomains": ["Cluster.Local"]},
        "bad-duration-and-key-type.json": {"certificate": {"maxLifetime": "1 day", "keyTypes": ["dsa1024"], "crls": ["garbage"]}},
        "bad-path-pattern.json": {"policies": [{"name": "x", "rules": [{"to": [{"operation": {"paths": ["/api//x", "/%61dmin", "admin", "/{x}"]}}]}]}]},
        "bad-duplicate-names.json": {"policies": [{"name": "x", "rules": []}, {"name": "x", "rules": []}]},
    }
    for name, doc in docs.items():
        write(t, name, json.dumps(doc, indent=1))
    write(t, "not-json.txt", "{ mode: enforce, policies: [ {name: a, rules: [ {to: [ {operation: {paths: ['/x']}} ]} ]} ] }")
    write(t, "yaml-anchors.yaml", "base: &b {principals: ['a/b']}\npolicies:\n  - name: a\n    rules:\n      - from: [{source: *b}]\n")


# --- xfcc_bind ----------------------------------------------------------------------------------
def xfcc():
    t = "xfcc_bind"
    clear(t)
    healthy, inter, admin = fixture("healthy.pem"), fixture("intermediate-ca.pem"), fixture("admin.pem")
    hh = hashlib.sha256(pem_ders(healthy)[0]).hexdigest()
    ha = hashlib.sha256(pem_ders(admin)[0]).hexdigest()
    by = "By=spiffe://cluster.local/ns/server/sa/default"
    uri = "URI=spiffe://cluster.local/ns/default/sa/healthy"
    real = f'{by};Hash={hh};Cert="{url_encode(healthy)}";Chain="{url_encode(healthy + inter)}";Subject="CN=healthy,O=cluster.local";{uri}'
    forged = f'Hash={hh};Cert="{url_encode(admin)}";Subject="CN=web";URI=spiffe://cluster.local/ns/frontend/sa/web'
    seeds = {
        "istio-default.txt": f'{by};Hash={hh};Subject="";{uri}',
        "envoy-cert-chain.txt": f"{hh}\n{real}",
        "envoy-cert-upper-digest.txt": f"{hh.upper()}\n{real}",
        "append-forward-forged-first.txt": f"{hh}\n{forged},{real}",
        "append-forward-real-first.txt": f"{hh}\n{real},Hash={ha};Cert=\"{url_encode(admin)}\"",
        "forged-hash-only.txt": "Hash=00;URI=spiffe://cluster.local/ns/other/sa/batch",
        "forged-cert-claims-victim.txt": f"{hh}\n{forged}",
        "plain-pem-cert.txt": f'{ha}\nHash={ha};Cert="{admin}"',
        "quoted-escapes.txt": r'By=spiffe://a;Hash=abc;Subject="CN=x\,y,O=\"q\"";URI=spiffe://b;DNS=d1;DNS=d2,Hash=def;Cert="%2D%2D"',
        "unterminated-quote.txt": f'{hh}\nHash={hh};Cert="{url_encode(healthy)}',
        "many-elements.txt": ",".join(f"Hash={i:064x};URI=spiffe://td/ns/n/sa/{i}" for i in range(20)),
    }
    for name, s in seeds.items():
        write(t, name, s)


# --- cert_prepare -------------------------------------------------------------------------------
def certs():
    t = "cert_prepare"
    clear(t)
    for f in sorted(FIX.glob("*.pem")) + sorted((FIX / "selfsigned").glob("*.pem")):
        if f.name == "huge-extension.pem":  # 28 KB: past the DER budget, libFuzzer's max_len would follow it
            continue
        prefix = "selfsigned-" if f.parent.name == "selfsigned" else ""
        write(t, prefix + f.name, f.read_text())
    for name in ["healthy", "admin", "ed25519", "p384", "rsa2048", "self-signed", "via-p521", "server-only", "many-sans"]:
        write(t, f"{name}.der", pem_ders(fixture(f"{name}.pem"))[0])
    write(t, "healthy-with-chain.pem", fixture("healthy.pem") + fixture("intermediate-ca.pem"))
    write(t, "healthy-url-encoded.txt", url_encode(fixture("healthy.pem")))
    for name in ["ca.pem", "alice.pem", "frontend.pem", "server.pem", "other.pem"]:
        write(t, f"envoy-certs-{name}", (REPO / "envoy/certs" / name).read_text())


# --- path_normalize -----------------------------------------------------------------------------
PATHS = [
    "/admin/..%2Fusers", "//admin", "/api/.;/admin", "/a/./b//c?x=1", "/", "", "*", "http://h/a",
    "/public/../admin", "/a/b/..", "/a/b/.", "/../../etc/passwd", "/%2e%2e/admin", "/%2E%2e%2fadmin",
    "/api%5C..%5Cadmin", "/api\\..\\admin", "/%61dmin", "/%7euser", "/a%3Bb", "/a;b=c/d", "/100%",
    "/%zz", "/%0a", "/a%00b", "/a\x01b", "/a\x7fb", "/a#frag", "/a?b#c", "/a?x=/../y", "/ü/%C3%BC",
    "/a b", "/.../x", "/..a/b", "/a/..%2f..%2fb", "///a///b///", "/a/%2E/b", "/api/items?x=1&y=%2F",
]


def paths():
    t = "path_normalize"
    clear(t)
    for i, p in enumerate(PATHS):
        slug = re.sub(r"[^A-Za-z0-9.]+", "_", p).strip("_")[:40]
        write(t, f"{i:02}-{slug}", p.encode())


# --- decide -------------------------------------------------------------------------------------
def requests():
    t = "decide"
    clear(t)
    reqs = {
        "allow-api.txt": "rewrite healthy\nGET\n/api/items?x=1\napi.example\n8443\napi.example\nx-request-id: 1",
        "admin-dot-dot-escaped.txt": "rewrite healthy\nGET\n/admin/..%2Fusers\napi.example\n8443\n",
        "double-slash-admin.txt": "rewrite healthy\nGET\n//admin\napi.example\n8443\n",
        "path-parameter.txt": "rewrite healthy\nGET\n/api/.;/admin\napi.example\n8443\n",
        "dot-and-slashes.txt": "rewrite healthy\nGET\n/a/./b//c?x=1\napi.example\n8443\n",
        "public-dot-dot-admin.txt": "reject healthy\nGET\n/public/../admin/x\napi.example\n8443\n",
        "none-mode-raw.txt": "none healthy\nGET\n/api/%2e%2e/admin\napi.example\n8443\n",
        "template-items.txt": "rewrite healthy\nHEAD\n/api/v1/items\nAPI.example.:8443\n8443\n",
        "files-audit.txt": "rewrite healthy\nGET\n/files/a/b/../c\napi.example\n8443\n",
        "admin-cert.txt": "rewrite admin\nGET\n/admin/users\napi.example\n8443\napi.example",
        "header-role.txt": "rewrite healthy\nGET\n/api/items\napi.example\n8443\n\nx-role: user\nx-role: admin",
        "plaintext.txt": "rewrite none\nGET\n/public/index.html\nwww.example\n80\n",
        "attributes.txt": "plain attrs:spiffe://cluster.local/ns/ops/sa/admin||CN=admin,O=x\nGET\n/admin/x\napi.example\n8443\napi.example",
        "attributes-needs-cert.txt": "reject attrs:spiffe://cluster.local/ns/a/sa/b\nGET\n/api/x\napi.example\n8443\n",
        "attributes-subject.txt": "plain attrs:|svc.example|CN=admin\nPOST\n/admin/x\napi.example\n8443\napi.example",
        "unparseable.txt": "rewrite unparseable\nGET\n/\napi.example\n8443\n",
        "linkerd-alias.txt": "linkerd l5d:web.frontend.serviceaccount.identity.linkerd.old.local\nGET\n/api/items\napi.example\n8443\n",
        "linkerd-two-copies.txt": "linkerd l5d:web.frontend.serviceaccount.identity.linkerd.cluster.local|spiffe://eu.partner.example/ns/a/sa/b\nGET\n/admin/x\napi.example\n8443\n",
        "dry-run-invalid.txt": "dryRun healthy\nGET\n/admin/..%2Fusers?x\napi.example\n8443\n",
        "dry-run-rewrite.txt": "dryRun healthy\nGET\n/api/./items\napi.example\n8443\n",
        "plain-files-rewrite.txt": "plain healthy\nGET\n/files//x/%7e/../y?q=%2F\napi.example\n8443\n",
        "expired.txt": "rewrite expired\nGET\n/api/items\napi.example\n8443\n",
        "no-path.txt": "rewrite healthy\nGET",
        "fragment.txt": "rewrite healthy\nGET\n/api/items#x\napi.example\n8443\n",
        "backslash.txt": "rewrite healthy\nGET\n/api\\..\\admin\napi.example\n8443\n",
        "control.txt": "rewrite healthy\nGET\n/api/%0a/admin\napi.example\n8443\n",
    }
    for name, r in reqs.items():
        write(t, name, r)


if __name__ == "__main__":
    policies()
    xfcc()
    certs()
    paths()
    requests()
