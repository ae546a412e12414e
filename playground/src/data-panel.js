// The data panel: its fields (or a CSV) make the dataset, and the URL keeps what made it.

import { parseCsv } from './csv.js';
import { generate, prepare } from './datasets.js';
import { storeCsv } from './url-state.js';

function field(form, name) {
  return form.elements.namedItem(name);
}

export function fillDataForm(form, params) {
  for (const name of ['kind', 'points', 'noise', 'split', 'seed']) field(form, name).value = String(params[name]);
  if (params.csv) field(form, 'csv').value = params.csv;
  form.querySelector('#csv-fields').hidden = params.kind !== 'csv';
}

/** The parameters in the form; a CSV is stored under its digest for the URL to name. */
export function readDataForm(form) {
  const kind = field(form, 'kind').value;
  const clamp = (name, lo, hi) => Math.min(hi, Math.max(lo, Number(field(form, name).value) || 0));
  const params = {
    kind,
    points: Math.round(clamp('points', 10, 5000)),
    noise: clamp('noise', 0, 0.5),
    split: clamp('split', 0.1, 0.9),
    seed: Math.round(clamp('seed', 0, 2 ** 31)),
  };
  form.querySelector('#csv-fields').hidden = kind !== 'csv';
  if (kind === 'csv') {
    params.csv = field(form, 'csv').value;
    params.csvDigest = params.csv.trim() ? storeCsv(params.csv) : null;
  }
  return params;
}

/** The dataset the parameters describe (throws with a sentence for a bad CSV). */
export function makeDataset(params) {
  if (params.kind === 'csv') {
    if (!params.csv) {
      throw new Error(
        params.csvDigest
          ? 'This link names a CSV that was pasted in another browser; paste it here too.'
          : 'Paste or upload a CSV: one example per line, the label last.',
      );
    }
    return prepare(parseCsv(params.csv), params);
  }
  return prepare(generate(params), params);
}

export function describeDataset(dataset) {
  const labels =
    dataset.task === 'binary'
      ? 'labels 0/1'
      : dataset.task === 'classes'
        ? `${dataset.n_L} classes`
        : 'real-valued labels (regression)';
  return `${dataset.train.m} training and ${dataset.test.m} test examples, ${dataset.n_x} features, ${labels}.`;
}
