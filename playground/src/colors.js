// Colour scales as lookup tables (256 RGBA entries), so painting a heat map is one table
// read per pixel. Blue is positive (and class 1), red negative (and class 0), throughout.

import { rgb } from 'd3-color';
import { interpolateRdBu, interpolateViridis, schemeTableau10 } from 'd3-scale-chromatic';

function table(interpolate) {
  const out = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i += 1) {
    const { r, g, b } = rgb(interpolate(i / 255));
    out.set([r, g, b, 255], i * 4);
  }
  return out;
}

export const DIVERGING = table(interpolateRdBu); // 0: red, 0.5: white, 1: blue
export const SEQUENTIAL = table(interpolateViridis);
export const CLASSES = schemeTableau10.map((colour) => rgb(colour));

/** Index into a table for t in [0, 1]. */
export function slot(t) {
  return Math.max(0, Math.min(255, Math.round(t * 255))) * 4;
}

export function css(tableData, t) {
  const i = slot(t);
  return `rgb(${tableData[i]}, ${tableData[i + 1]}, ${tableData[i + 2]})`;
}

/** The colour of a label: a class, or a value on the sequential scale over [lo, hi]. */
export function labelColour(task, label, [lo, hi] = [0, 1]) {
  if (task === 'binary') return css(DIVERGING, label === 1 ? 0.9 : 0.1);
  if (task === 'classes') return CLASSES[label % CLASSES.length].formatHex();
  return css(SEQUENTIAL, hi > lo ? (label - lo) / (hi - lo) : 0.5);
}
