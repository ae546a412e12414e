// The 2-D datasets (circle, XOR, two Gaussians, spiral), generated from a seed, and the
// split of any labelled set into training and test batches in the course's layout:
// X is (n_x, m), one column per example; Y is (n_L, m), made for the network at hand.

import { matrix } from './matrix.js';
import { seeded, shuffle } from './random.js';

export const PLANE = [-1.2, 1.2]; // both axes of the generated sets

function circle(n, noise, random) {
  return Array.from({ length: n }, (_, i) => {
    const inside = i % 2 === 0;
    const r = inside ? random.between(0, 0.45) : random.between(0.7, 1.0);
    const t = random.between(0, 2 * Math.PI);
    return point(r * Math.cos(t), r * Math.sin(t), inside ? 1 : 0, noise, random);
  });
}

function xor(n, noise, random) {
  return Array.from({ length: n }, () => {
    // Kept a little off the axes, where the label flips.
    const x = random.between(0.05, 1) * (random.uniform() < 0.5 ? -1 : 1);
    const y = random.between(0.05, 1) * (random.uniform() < 0.5 ? -1 : 1);
    return point(x, y, x * y > 0 ? 1 : 0, noise, random);
  });
}

function gaussians(n, noise, random) {
  return Array.from({ length: n }, (_, i) => {
    const label = i % 2;
    const centre = label === 1 ? 0.45 : -0.45;
    return point(centre + 0.25 * random.normal(), centre + 0.25 * random.normal(), label, noise, random);
  });
}

function spiral(n, noise, random) {
  const half = Math.ceil(n / 2);
  return Array.from({ length: n }, (_, i) => {
    const label = i % 2;
    const k = Math.floor(i / 2) / half;
    const r = 0.05 + 0.95 * k;
    const t = 1.75 * k * 2 * Math.PI + label * Math.PI;
    return point(r * Math.sin(t), r * Math.cos(t), label, noise, random);
  });
}

function point(x, y, label, noise, random) {
  return { features: [x + noise * random.normal(), y + noise * random.normal()], label };
}

export const GENERATORS = { circle, xor, gaussians, spiral };

/** A generated set: {kind, points, noise, seed} decide every coordinate. */
export function generate({ kind, points, noise, seed }) {
  return GENERATORS[kind](points, noise, seeded(seed));
}

/** binary (0/1 labels), classes (integers 0..K-1, K > 2) or regression (anything else). */
export function taskOf(labels) {
  if (labels.every((y) => y === 0 || y === 1)) return { task: 'binary', n_L: 1 };
  if (labels.every((y) => Number.isInteger(y) && y >= 0)) {
    return { task: 'classes', n_L: Math.max(...labels) + 1 };
  }
  return { task: 'regression', n_L: 1 };
}

function batch(examples, n_x) {
  const m = examples.length;
  const X = matrix(n_x, m);
  examples.forEach(({ features }, j) => {
    features.forEach((value, i) => {
      X.data[i * m + j] = value;
    });
  });
  return { X, labels: examples.map((e) => e.label), m };
}

/** Y for a network with n_L output units: the labels as one row, or one-hot (n_L, m). */
export function targets(part, n_L) {
  const Y = matrix(n_L, part.m);
  part.labels.forEach((label, j) => {
    if (n_L === 1) Y.data[j] = label;
    else Y.data[label * part.m + j] = 1;
  });
  return Y;
}

/** Output units a network needs for this data with this output activation. */
export function outputUnits(dataset, outputActivation) {
  if (outputActivation === 'softmax') return Math.max(2, dataset.n_L);
  return dataset.n_L;
}

/** Shuffle (seeded) and split into {train, test}, with the task and the plane to draw. */
export function prepare(examples, { split, seed }) {
  if (examples.length < 2) throw new Error('A dataset needs at least two examples.');
  const n_x = examples[0].features.length;
  const { task, n_L } = taskOf(examples.map((e) => e.label));
  const order = shuffle(examples, seeded(seed + 1));
  const cut = Math.min(order.length - 1, Math.max(1, Math.round(order.length * split)));
  return {
    n_x,
    n_L,
    task,
    train: batch(order.slice(0, cut), n_x),
    test: batch(order.slice(cut), n_x),
    bounds: n_x === 2 ? boundsOf(examples) : null,
  };
}

function boundsOf(examples) {
  const axis = (i) => {
    const values = examples.map((e) => e.features[i]);
    const lo = Math.min(...values, PLANE[0]);
    const hi = Math.max(...values, PLANE[1]);
    const pad = (hi - lo) * 0.02;
    return [lo - pad, hi + pad];
  };
  return [axis(0), axis(1)];
}
