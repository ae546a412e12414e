// The decision boundary: one base64 /predict of a 100×100 grid over the plane, painted as a
// heat map with ImageData, under the data points (training filled, test as rings).

import { post } from './api.js';
import { CLASSES, DIVERGING, SEQUENTIAL, labelColour, slot } from './colors.js';
import { fromWire, matrix, toWire } from './matrix.js';

export const GRID = 100;
// The heat map is drawn this much toward white, so the points on it stay visible.
const TINT = 0.6;
const tint = (c) => 255 - TINT * (255 - c);

export class Boundary {
  constructor(heat, points, legend) {
    this.heat = heat;
    this.points = points;
    this.legend = legend;
    this.image = heat.getContext('2d').createImageData(GRID, GRID);
    this.grid = null; // the grid's X in the wire form, per dtype
    this.dataset = null;
  }

  setDataset(dataset) {
    this.dataset = dataset;
    this.grid = null;
    this.clear();
    this.drawPoints();
  }

  clear() {
    this.heat.getContext('2d').clearRect(0, 0, GRID, GRID);
    this.legend.textContent = this.dataset?.bounds
      ? ''
      : 'The plane shows two features; this dataset has another number of them.';
  }

  gridX(dtype) {
    if (this.grid?.dtype !== dtype) {
      const [[x0, x1], [y0, y1]] = this.dataset.bounds;
      const X = matrix(2, GRID * GRID);
      // Pixel (row i, column j) is example i * GRID + j; row 0 is the top, the largest y.
      for (let i = 0; i < GRID; i += 1) {
        for (let j = 0; j < GRID; j += 1) {
          const k = i * GRID + j;
          X.data[k] = x0 + ((j + 0.5) / GRID) * (x1 - x0);
          X.data[GRID * GRID + k] = y1 - ((i + 0.5) / GRID) * (y1 - y0);
        }
      }
      this.grid = { dtype, X: toWire(X, dtype) };
    }
    return this.grid.X;
  }

  /** Predict the grid with the network and paint it; resolves to the milliseconds it took. */
  async redraw(network) {
    if (!this.dataset?.bounds || network.layer_dims[0] !== 2) return null;
    const started = performance.now();
    const body = { X: this.gridX(network.dtype) };
    const answer = await post(`/networks/${network.id}/predict?encoding=base64`, body);
    this.paint(fromWire(answer.A), network.activations.at(-1));
    const ended = performance.now();
    performance.measure('boundary-redraw', { start: started, end: ended });
    return ended - started;
  }

  paint(A, output) {
    const pixels = this.image.data;
    const n = GRID * GRID;
    if (A.rows > 1) {
      // Classes: the most probable class's colour, paler where the network is unsure.
      for (let k = 0; k < n; k += 1) {
        let best = 0;
        for (let c = 1; c < A.rows; c += 1) if (A.data[c * n + k] > A.data[best * n + k]) best = c;
        const p = A.data[best * n + k];
        const colour = CLASSES[best % CLASSES.length];
        const keep = 0.25 + 0.6 * p;
        pixels[k * 4] = tint(255 - keep * (255 - colour.r));
        pixels[k * 4 + 1] = tint(255 - keep * (255 - colour.g));
        pixels[k * 4 + 2] = tint(255 - keep * (255 - colour.b));
        pixels[k * 4 + 3] = 255;
      }
      this.legend.textContent = 'Colour: the most probable class; paler where it is less sure.';
    } else {
      const probability = output === 'sigmoid';
      let lo = 0;
      let hi = 1;
      if (!probability) {
        lo = Infinity;
        hi = -Infinity;
        for (let k = 0; k < n; k += 1) {
          lo = Math.min(lo, A.data[k]);
          hi = Math.max(hi, A.data[k]);
        }
      }
      const table = probability ? DIVERGING : SEQUENTIAL;
      const span = hi > lo ? hi - lo : 1;
      for (let k = 0; k < n; k += 1) {
        const from = slot((A.data[k] - lo) / span);
        pixels[k * 4] = tint(table[from]);
        pixels[k * 4 + 1] = tint(table[from + 1]);
        pixels[k * 4 + 2] = tint(table[from + 2]);
        pixels[k * 4 + 3] = 255;
      }
      this.legend.textContent = probability
        ? 'Colour: A[L], the probability of class 1: red 0, white 0.5, blue 1.'
        : `Colour: A[L] from ${lo.toPrecision(3)} (purple) to ${hi.toPrecision(3)} (yellow).`;
    }
    this.heat.getContext('2d').putImageData(this.image, 0, 0);
  }

  drawPoints() {
    const canvas = this.points;
    const context = canvas.getContext('2d');
    context.clearRect(0, 0, canvas.width, canvas.height);
    const dataset = this.dataset;
    if (!dataset?.bounds) return;
    const [[x0, x1], [y0, y1]] = dataset.bounds;
    const all = [...dataset.train.labels, ...dataset.test.labels];
    const range = [Math.min(...all), Math.max(...all)];
    const draw = (part, filled) => {
      const { X, labels, m } = part;
      for (let j = 0; j < m; j += 1) {
        const px = ((X.data[j] - x0) / (x1 - x0)) * canvas.width;
        const py = ((y1 - X.data[m + j]) / (y1 - y0)) * canvas.height;
        context.beginPath();
        context.arc(px, py, 4.5, 0, 2 * Math.PI);
        const colour = labelColour(dataset.task, labels[j], range);
        if (filled) {
          context.fillStyle = colour;
          context.fill();
          context.strokeStyle = '#fff';
          context.lineWidth = 1.2;
        } else {
          context.strokeStyle = colour;
          context.lineWidth = 2.2;
        }
        context.stroke();
      }
    };
    draw(dataset.train, true);
    draw(dataset.test, false);
  }
}
