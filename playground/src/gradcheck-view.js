// The gradient check: what /gradient-check compares, and its answer layer by layer.

import { post } from './api.js';
import { render } from './tex.js';

const EXPLAIN = [
  {
    text: 'Each parameter θᵢ is nudged both ways by ε and the cost recomputed, which approximates its derivative without any backpropagation:',
    tex: '\\text{gradapprox}_i = \\frac{J(\\theta + \\varepsilon e_i) - J(\\theta - \\varepsilon e_i)}{2\\varepsilon}, \\qquad \\varepsilon = 10^{-7}',
  },
  {
    text: 'Then backpropagation’s gradient (all dW and db, flattened into one vector) is compared with that approximation by a relative difference, so its size does not depend on the gradients’ own scale:',
    tex: '\\text{difference} = \\frac{\\lVert \\text{grad} - \\text{gradapprox} \\rVert_2}{\\lVert \\text{grad} \\rVert_2 + \\lVert \\text{gradapprox} \\rVert_2}',
  },
  {
    text: 'The course’s threshold is 2×10⁻⁷: below it, backpropagation is right; far above it (10⁻³ and more), something is wrong, such as the two typos. The check always runs without dropout: the random masks would change J between the two nudges, so there would be no single cost to differentiate. ReLU’s kink at 0 can make an honest gradient miss the threshold when a nudge crosses it.',
    tex: '\\text{passed} \\iff \\text{difference} < 2 \\times 10^{-7}',
  },
];

export function explainGradientCheck(root) {
  root.replaceChildren();
  for (const { text, tex } of EXPLAIN) {
    const p = document.createElement('p');
    p.textContent = text;
    const math = document.createElement('div');
    math.className = 'math';
    render(tex, math);
    root.append(p, math);
  }
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
}

function mark(difference, threshold) {
  return difference < threshold ? ['✓ below', 'pass'] : ['✗ above', 'fail'];
}

/** Run the check on {X, Y} and show the answer in `root`. */
export async function runGradientCheck(root, network, batch) {
  const answer = await post(`/networks/${network.id}/gradient-check`, { ...batch, epsilon: 1e-7 });
  root.replaceChildren();
  const summary = document.createElement('p');
  summary.className = answer.passed ? 'verdict pass' : 'verdict fail';
  summary.dataset.passed = String(answer.passed);
  summary.textContent = `difference = ${answer.difference.toExponential(3)} ${answer.passed ? '<' : '≥'} threshold ${answer.threshold.toExponential(0)}: ${answer.passed ? 'passed' : 'failed'} (${answer.parameters_checked} parameters checked on ${batch.X[0].length} examples)`;
  const table = document.createElement('table');
  table.className = 'check-table';
  const caption = document.createElement('caption');
  caption.textContent = 'The same relative difference, layer by layer';
  const head = table.createTHead().insertRow();
  for (const title of ['layer', 'dW difference', '', 'db difference', '']) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = title;
    head.append(th);
  }
  const body = table.createTBody();
  for (const layer of answer.layers) {
    const row = body.insertRow();
    row.dataset.layer = String(layer.layer);
    cell(row, String(layer.layer));
    for (const difference of [layer.dW_difference, layer.db_difference]) {
      const [text, className] = mark(difference, answer.threshold);
      cell(row, difference.toExponential(3), 'number');
      cell(row, text, className);
    }
  }
  table.prepend(caption);
  const scroller = document.createElement('div');
  scroller.className = 'scroll';
  scroller.append(table);
  root.append(summary, scroller);
  return answer;
}
