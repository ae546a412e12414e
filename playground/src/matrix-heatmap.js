// One matrix as a heat map on a canvas (one pixel per entry, scaled up), with its number
// and indices shown on hover, or by focusing it and moving with the arrow keys.

import { DIVERGING, slot } from './colors.js';
import { at } from './matrix.js';

const CELL = 14; // CSS pixels per entry when the matrix is small
const MAX_WIDTH = 360;
const MAX_HEIGHT = 160;

export function heatmap(name, M, { rowsAre, colsAre }) {
  const figure = document.createElement('figure');
  figure.className = 'heatmap';
  const caption = document.createElement('figcaption');
  caption.textContent = `${name} (${M.rows}×${M.cols})`;
  const box = document.createElement('div');
  box.className = 'heatmap-box';
  const canvas = document.createElement('canvas');
  canvas.width = M.cols;
  canvas.height = M.rows;
  const cell = Math.max(1, Math.min(CELL, MAX_WIDTH / M.cols, MAX_HEIGHT / M.rows));
  canvas.style.width = `${M.cols * cell}px`;
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  let largest = 0;
  for (const x of M.data) largest = Math.max(largest, Math.abs(x));
  canvas.setAttribute(
    'aria-label',
    `${name}, ${M.rows} by ${M.cols}, values within ±${largest.toPrecision(3)}; arrow keys read entries`,
  );
  const context = canvas.getContext('2d');
  const image = context.createImageData(M.cols, M.rows);
  for (let k = 0; k < M.data.length; k += 1) {
    const from = slot(largest > 0 ? 0.5 + (0.5 * M.data[k]) / largest : 0.5);
    image.data.set(DIVERGING.subarray(from, from + 4), k * 4);
  }
  context.putImageData(image, 0, 0);
  const marker = document.createElement('div');
  marker.className = 'cell-marker';
  marker.hidden = true;
  const readout = document.createElement('output');
  readout.className = 'cell-readout';
  readout.textContent = `blue positive, red negative, white 0 (scale ±${largest.toPrecision(3)})`;

  let cursor = null;
  const show = (i, j) => {
    cursor = [i, j];
    const size = canvas.clientWidth / M.cols;
    const height = canvas.clientHeight / M.rows;
    Object.assign(marker.style, {
      left: `${j * size}px`,
      top: `${i * height}px`,
      width: `${Math.max(size, 3)}px`,
      height: `${Math.max(height, 3)}px`,
    });
    marker.hidden = false;
    readout.textContent = `${name} row ${i + 1} (${rowsAre} ${i + 1}), column ${j + 1} (${colsAre} ${j + 1}) = ${at(M, i, j).toPrecision(5)}`;
  };
  canvas.addEventListener('mousemove', (event) => {
    const i = Math.floor((event.offsetY / canvas.clientHeight) * M.rows);
    const j = Math.floor((event.offsetX / canvas.clientWidth) * M.cols);
    if (i >= 0 && i < M.rows && j >= 0 && j < M.cols) show(i, j);
  });
  canvas.addEventListener('mouseleave', () => {
    marker.hidden = true;
  });
  canvas.addEventListener('focus', () => show(...(cursor ?? [0, 0])));
  canvas.addEventListener('blur', () => {
    marker.hidden = true;
  });
  canvas.addEventListener('keydown', (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [i, j] = cursor ?? [0, 0];
    show(Math.min(M.rows - 1, Math.max(0, i + move[0])), Math.min(M.cols - 1, Math.max(0, j + move[1])));
  });
  box.append(canvas, marker);
  figure.append(caption, box, readout);
  return figure;
}
