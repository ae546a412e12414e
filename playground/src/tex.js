// Numbers and matrices as TeX, typeset by KaTeX. Every matrix carries its name as a data
// attribute (\htmlData), so the page, and its tests, can tell which matrix is which.

import katex from 'katex';

export const SHOWN = 8; // rows or columns of a matrix shown before the middle is elided

export function num(x) {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  const size = Math.abs(x);
  if (size >= 1e-3 && size < 1e5) return String(Number(x.toPrecision(4)));
  const [mantissa, exponent] = x.toExponential(3).split('e');
  return `${Number(mantissa)}{\\times}10^{${Number(exponent)}}`;
}

function kept(count) {
  if (count <= SHOWN) return Array.from({ length: count }, (_, i) => i);
  const half = SHOWN / 2;
  return [...Array.from({ length: half }, (_, i) => i), -1, ...Array.from({ length: half }, (_, i) => count - half + i)];
}

/** A bmatrix of M's numbers, its middle elided past SHOWN rows or columns. */
export function bmatrix(M, cell = num) {
  const rows = kept(M.rows);
  const cols = kept(M.cols);
  const lines = rows.map((i) =>
    cols
      .map((j) => {
        if (i < 0 && j < 0) return '\\ddots';
        if (i < 0) return '\\vdots';
        if (j < 0) return '\\cdots';
        return cell(M.data[i * M.cols + j]);
      })
      .join(' & '),
  );
  return `\\begin{bmatrix}${lines.join(' \\\\ ')}\\end{bmatrix}`;
}

/** M typeset with its shape underneath, tagged data-matrix=<tag>. */
export function shown(tag, M) {
  return `\\htmlData{matrix=${tag}}{\\underset{${M.rows}\\times ${M.cols}}{${bmatrix(M)}}}`;
}

/** Layer-indexed symbol: sym('dW', 2) is dW^{[2]}. */
export const sym = (name, l, suffix = '') => `${name}^{[${l}]${suffix}}`;

const OPTIONS = {
  displayMode: true,
  throwOnError: false,
  strict: 'ignore',
  // Only \htmlData, which names matrices, is trusted: no other HTML comes from TeX here.
  trust: (context) => context.command === '\\htmlData',
};

export function render(tex, element) {
  katex.render(tex, element, OPTIONS);
  scrollableByKeyboard(element);
}

// A wide matrix scrolls sideways; then its box takes the focus, so the keyboard can scroll it.
const watcher = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.scrollWidth > target.clientWidth + 1) {
      target.tabIndex = 0;
      target.setAttribute('role', 'group');
      target.setAttribute('aria-label', 'equation, wider than the window: scroll with the arrow keys');
    } else {
      target.removeAttribute('tabindex');
      target.removeAttribute('role');
      target.removeAttribute('aria-label');
    }
  }
});

function scrollableByKeyboard(element) {
  watcher.observe(element);
}

/** A block: a sentence saying what the equation is, then the equation itself. */
export function equation(parent, { id, caption, tex, note, className = '' }) {
  const block = document.createElement('div');
  block.className = `equation ${className}`.trim();
  if (id) block.dataset.eq = id;
  if (caption) {
    const p = document.createElement('p');
    p.className = 'caption';
    p.innerHTML = caption;
    block.append(p);
  }
  const math = document.createElement('div');
  math.className = 'math';
  render(tex, math);
  block.append(math);
  if (note) {
    const p = document.createElement('p');
    p.className = `note-line ${note.className ?? ''}`.trim();
    p.textContent = note.text;
    block.append(p);
  }
  parent.append(block);
  return block;
}
