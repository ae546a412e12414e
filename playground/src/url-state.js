// What survives a reload: the network's id and the dataset's parameters live in the URL
// (/playground?network=<id>&data=circle&points=200&noise=0.1&split=0.7&seed=1), so a
// link shows the same network and regenerates the same data anywhere. A pasted CSV is too
// big for a URL: it stays in this browser's localStorage, and the URL names its digest.

const CSV_PREFIX = 'backprop.csv.';

export const DATA_DEFAULTS = { kind: 'circle', points: 200, noise: 0.1, split: 0.7, seed: 1 };

export function readState() {
  const query = new URLSearchParams(window.location.search);
  const number = (name) => {
    const value = Number(query.get(name));
    return query.has(name) && Number.isFinite(value) ? value : DATA_DEFAULTS[name];
  };
  const data = {
    kind: query.get('data') ?? DATA_DEFAULTS.kind,
    points: number('points'),
    noise: number('noise'),
    split: number('split'),
    seed: number('seed'),
  };
  if (data.kind === 'csv') {
    data.csvDigest = query.get('csv');
    data.csv = data.csvDigest === null ? null : localStorage.getItem(CSV_PREFIX + data.csvDigest);
  }
  return { network: query.get('network'), data };
}

export function writeState({ network, data }) {
  const query = new URLSearchParams();
  if (network) query.set('network', network);
  query.set('data', data.kind);
  if (data.kind === 'csv') {
    if (data.csvDigest) query.set('csv', data.csvDigest);
  } else {
    query.set('points', String(data.points));
    query.set('noise', String(data.noise));
  }
  query.set('split', String(data.split));
  query.set('seed', String(data.seed));
  const url = `${window.location.pathname}?${query}`;
  if (url !== `${window.location.pathname}${window.location.search}`) {
    window.history.replaceState(null, '', url);
  }
}

/** Keep CSV text in localStorage under a digest of it; the digest goes in the URL. */
export function storeCsv(text) {
  // FNV-1a: a plain digest that, unlike crypto.subtle, works on a page served over http.
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  const digest = `${hash.toString(16).padStart(8, '0')}-${text.length}`;
  localStorage.setItem(CSV_PREFIX + digest, text);
  return digest;
}
