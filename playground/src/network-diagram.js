// The network as a diagram: a column of units per layer, and a line per weight whose colour
// is its sign (blue positive, red negative) and whose width is its size.

import { DIVERGING, css } from './colors.js';
import { at } from './matrix.js';

const SVG = 'http://www.w3.org/2000/svg';
const MAX_UNITS = 24; // a wider layer is drawn as its first units and a count
const WIDTH = 420;
const HEIGHT = 260;

function element(name, attributes, title) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (title) {
    const t = document.createElementNS(SVG, 'title');
    t.textContent = title;
    node.append(t);
  }
  return node;
}

/** Draw `network` (the resource) with W, b (matrices per layer) into `root`. */
export function drawNetwork(root, network, W, b) {
  const dims = network.layer_dims;
  const svg = element('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': `Network ${dims.join('-')}: ${dims.length - 1} layers of weights`,
  });
  const x = (l) => 30 + (l * (WIDTH - 60)) / (dims.length - 1);
  const shownUnits = (n) => Math.min(n, MAX_UNITS);
  const y = (l, i) => {
    const n = shownUnits(dims[l]);
    return 28 + ((i + 0.5) * (HEIGHT - 50)) / n;
  };
  let largest = 0;
  for (const M of W) for (const w of M.data) largest = Math.max(largest, Math.abs(w));
  const edges = element('g', { class: 'edges' });
  for (let l = 1; l < dims.length; l += 1) {
    const M = W[l - 1];
    for (let i = 0; i < shownUnits(dims[l]); i += 1) {
      for (let j = 0; j < shownUnits(dims[l - 1]); j += 1) {
        const w = at(M, i, j);
        const size = largest > 0 ? Math.abs(w) / largest : 0;
        edges.append(
          element(
            'line',
            {
              x1: x(l - 1),
              y1: y(l - 1, j),
              x2: x(l),
              y2: y(l, i),
              stroke: css(DIVERGING, w >= 0 ? 0.85 : 0.15),
              'stroke-width': (0.4 + 4.5 * size).toFixed(2),
              'stroke-opacity': (0.35 + 0.65 * size).toFixed(2),
            },
            `W[${l}] row ${i + 1}, column ${j + 1} = ${w.toPrecision(4)}`,
          ),
        );
      }
    }
  }
  svg.append(edges);
  const units = element('g', { class: 'units' });
  dims.forEach((n, l) => {
    const label = l === 0 ? 'input' : `${network.activations[l - 1]}`;
    units.append(element('text', { x: x(l), y: 14, 'text-anchor': 'middle', class: 'layer-label' }));
    units.lastChild.textContent = `${l === 0 ? 'x' : `layer ${l}`} (${n})`;
    for (let i = 0; i < shownUnits(n); i += 1) {
      const bias = l === 0 ? null : at(b[l - 1], i, 0);
      const title = l === 0 ? `input x${i + 1}` : `layer ${l} (${label}) unit ${i + 1}: b = ${bias.toPrecision(4)}`;
      const fill = bias === null ? '#fff' : css(DIVERGING, 0.5 + 0.5 * Math.tanh(bias));
      units.append(element('circle', { cx: x(l), cy: y(l, i), r: 7, fill, stroke: '#333', 'stroke-width': 1 }, title));
    }
    if (n > MAX_UNITS) {
      units.append(element('text', { x: x(l), y: HEIGHT - 6, 'text-anchor': 'middle', class: 'layer-label' }));
      units.lastChild.textContent = `+${n - MAX_UNITS} more`;
    }
  });
  svg.append(units);
  root.replaceChildren(svg);
}
