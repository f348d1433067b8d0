// The peerguard playground page: gathers the inputs, asks the wasm engine, shows the answer.
// Every input event re-evaluates; the engine is the same Rust code the filter runs.
import init, { evaluate, presets, version } from './pkg/peerguard_playground.js';

const $ = (id) => document.getElementById(id);
const FIELDS = ['policy', 'principal', 'issuer', 'lifetime', 'pem', 'chain', 'method', 'path', 'host', 'port', 'sni', 'at', 'headers'];
let PRESETS = [];

function peerKind() {
  const checked = document.querySelector('input[name="peer-kind"]:checked');
  return checked ? checked.value : 'none';
}

function showPeerFields() {
  const kind = peerKind();
  $('principal-fields').hidden = kind !== 'principal';
  $('pem-fields').hidden = kind !== 'pem';
}

/** The time field: empty means now; otherwise anything Date.parse reads (RFC 3339). */
function atSeconds() {
  const v = $('at').value.trim();
  if (!v) return { at: Math.floor(Date.now() / 1000), now: true };
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : { at: Math.floor(t / 1000), now: false };
}

function iso(secs) {
  return new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
}

function duration(secs) {
  const neg = secs < 0;
  let s = Math.abs(secs);
  const parts = [];
  // Days only from two days on: a 24h certificate reads as 24h, as policies write it.
  const units = s >= 2 * 86400 ? [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] : [['h', 3600], ['m', 60], ['s', 1]];
  for (const [unit, n] of units) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
  }
  return (neg ? '-' : '') + (parts.slice(0, 2).join('') || '0s');
}

function setText(id, text) {
  $(id).textContent = text === null || text === undefined || text === '' ? '—' : String(text);
}

function render(out, time) {
  const d = out.decision;
  const verdict = $('verdict');
  verdict.className = 'verdict ' + (d ? d.decision : 'none');
  $('decision').textContent = d ? d.decision : '—';
  $('status').textContent = d && d.status ? `HTTP ${d.status}` : d ? 'forwarded' : '';
  setText('reason', d && d.reason);
  setText('decided-by', d && d.policy);
  setText('principal-out', d && d.principal);
  setText('would-deny', d && d.wouldDeny);
  setText('audit', d && d.audit && d.audit.join(', '));
  let upstream = '';
  if (d && d.decision === 'allow') {
    upstream = d.forwardedPath ? `:path rewritten to ${d.forwardedPath}` : ':path as sent';
    upstream += d.principal ? `; x-peerguard-principal: ${d.principal}` : '; no identity header';
  } else if (d && d.pathError) {
    upstream = `not forwarded: ${d.pathError}`;
  } else if (d) {
    upstream = 'not forwarded';
  }
  setText('upstream', upstream);
  setText('at-out', time ? `${iso(time.at)}${time.now ? ' (now)' : ''}` : '');
  $('summary').textContent = out.summary ? `valid: ${out.summary}` : '';

  const problems = [...(out.errors || []), ...(out.inputErrors || [])];
  if (out.certificateError) problems.push({ path: 'peer.pem', message: `invalid_certificate: ${out.certificateError}` });
  for (const w of out.warnings || []) problems.push({ path: 'warning', message: w });
  const list = $('errors');
  list.replaceChildren();
  for (const p of problems) {
    const li = document.createElement('li');
    const code = document.createElement('code');
    code.textContent = p.path;
    li.append(code, ` ${p.message}`);
    list.append(li);
  }
  $('problems').hidden = problems.length === 0;

  const c = out.certificate;
  $('cert-none').hidden = !!c;
  $('cert-facts').hidden = !c;
  const body = $('cert-facts').querySelector('tbody');
  body.replaceChildren();
  if (c) {
    const status = time && time.at > c.notAfter ? `expired ${duration(time.at - c.notAfter)} before the request`
      : time && time.at < c.notBefore ? `valid only ${duration(c.notBefore - time.at)} after the request`
        : time ? `valid, ${duration(c.notAfter - time.at)} left` : '';
    const identity = c.identity
      ? `${c.identity.principal} (from ${c.identity.source}${c.identity.trustDomain ? `, trust domain ${c.identity.trustDomain}` : ', no trust domain'})`
      : c.identityError ? c.identityError : 'none (no identity source of the policy is present)';
    const rows = [
      ['Subject', c.subject || '(empty)'],
      ['Issuer', c.issuer || '(empty)'],
      ['URI SANs', c.uriSans.join(', ') || 'none'],
      ['DNS SANs', c.dnsSans.join(', ') || 'none'],
      ['Identity', identity],
      ['Not before', iso(c.notBefore)],
      ['Not after', iso(c.notAfter)],
      ['Lifetime', `${duration(c.lifetimeSecs)}; ${status}`],
      ['Key', c.key],
      ['clientAuth', c.clientAuth === null ? 'no EKU extension' : c.clientAuth ? 'allowed by the EKU' : 'not in the EKU'],
      ['Self-issued', c.selfIssued ? 'yes' : 'no'],
      ['Serial', c.serial],
      ['SHA-256', c.sha256],
      ['SPKI SHA-256', c.spkiSha256],
      ['Presented chain', `${c.presentedChain} certificate${c.presentedChain === 1 ? '' : 's'}`],
    ];
    for (const [k, v] of rows) {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = k;
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(th, td);
      body.append(tr);
    }
  }

  const matched = $('matched');
  matched.replaceChildren();
  const rules = [...(out.certificateRules || []), ...(out.matchedRules || []).map((r) => `${r.path} (${r.policy})`)];
  for (const r of rules.length ? rules : ['none']) {
    const li = document.createElement('li');
    li.textContent = r;
    if (!rules.length) li.className = 'note';
    matched.append(li);
  }

  $('generated').hidden = !out.generatedPem;
  $('generated-pem').textContent = out.generatedPem || '';
}

function run() {
  showPeerFields();
  const time = atSeconds();
  const input = {
    policy: $('policy').value,
    peer: {
      kind: peerKind(),
      principal: $('principal').value,
      issuer: $('issuer').value,
      lifetime: $('lifetime').value,
      pem: $('pem').value,
      chain: $('chain').value,
    },
    request: {
      method: $('method').value,
      path: $('path').value,
      host: $('host').value,
      port: $('port').value,
      headers: $('headers').value,
      sni: $('sni').value,
    },
    at: time ? time.at : 0,
  };
  const out = JSON.parse(evaluate(JSON.stringify(input)));
  if (!time) {
    out.inputErrors = [...(out.inputErrors || []), { path: 'request.time', message: `${JSON.stringify($('at').value)} is not a time such as 2030-06-01T12:00:00Z` }];
    out.decision = null;
  }
  render(out, time);
  document.body.dataset.evaluations = String(Number(document.body.dataset.evaluations || 0) + 1);
}

function applyPreset(id) {
  const p = PRESETS.find((x) => x.id === id) || PRESETS[0];
  if (!p) return;
  $('preset').value = p.id;
  $('preset-note').textContent = `${p.note} (policy: ${p.policyFile})`;
  $('policy').value = p.policy;
  $(`peer-${p.peer.kind}`).checked = true;
  $('principal').value = p.peer.principal;
  $('issuer').value = p.peer.issuer;
  $('lifetime').value = '';
  $('pem').value = p.peer.pem;
  $('chain').value = '';
  $('method').value = p.request.method;
  $('path').value = p.request.path;
  $('host').value = p.request.host;
  $('port').value = '';
  $('sni').value = '';
  $('headers').value = p.request.headers;
  $('at').value = p.at;
  run();
}

async function main() {
  await init();
  PRESETS = JSON.parse(presets());
  // For the browser test (playground/tests/browser.cjs) and the curious.
  window.playground = { presets: PRESETS, evaluate: (input) => JSON.parse(evaluate(JSON.stringify(input))) };
  $('version').textContent = version();
  const select = $('preset');
  for (const p of PRESETS) {
    const opt = document.createElement('option');
    opt.value = p.id;
    opt.textContent = p.title;
    select.append(opt);
  }
  select.addEventListener('change', () => {
    history.replaceState(null, '', `#preset=${select.value}`);
    applyPreset(select.value);
  });
  for (const id of FIELDS) $(id).addEventListener('input', run);
  for (const r of document.querySelectorAll('input[name="peer-kind"]')) r.addEventListener('change', run);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('preset');
  applyPreset(fromHash || PRESETS[0].id);
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  document.body.dataset.ready = 'error';
  $('decision').textContent = 'error';
  $('reason').textContent = String(e);
});
