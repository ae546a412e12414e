// Backpropagation, step by step: for a small batch, every equation of the forward and the
// backward pass with the matrices /gradients returned (and W, b from /parameters), their
// shapes, the chain-rule derivation of dZ[L], and on request the two typos beside them.

import { ACTIVATION_TEX, derivative, derive, isCanonical } from './derivation.js';
import { fromWire, transpose, matrix } from './matrix.js';
import { equation, num, shown, sym } from './tex.js';
import { THRESHOLD, dAWithGradientTransposed, dWWithOutputActivations, downstreamdW } from './typos.js';

export const INCLUDE = ['Z', 'A', 'dZ', 'dA', 'dW', 'db'];

function heading(parent, text) {
  const h = document.createElement('h3');
  h.textContent = text;
  parent.append(h);
}

/** A gradient-check-style verdict on a mistyped gradient, as a sentence under it. */
function verdict(difference) {
  const failed = difference > THRESHOLD;
  return {
    className: failed ? 'fail' : 'pass',
    text: `Relative difference from the correct one, ‖typo − correct‖ / (‖typo‖ + ‖correct‖) = ${difference.toPrecision(4)} ${failed ? '>' : '≤'} 2×10⁻⁷: ${failed ? 'the gradient check fails.' : 'it passes.'}`,
  };
}

/**
 * Draw the view into `root`. `answer` is /gradients' response (nested lists), `parameters`
 * /parameters' (nested lists), `batch` {X, Y} the matrices sent, `network` the resource.
 */
export function renderBackprop(root, { network, parameters, answer, batch, showTypos }) {
  root.replaceChildren();
  const L = network.layer_dims.length - 1;
  const m = batch.X.cols;
  const lambd = network.l2_lambda;
  const acts = network.activations;
  const layers = answer.layers.map((layer) =>
    Object.fromEntries(Object.entries(layer).filter(([k]) => k !== 'layer').map(([k, v]) => [k, fromWire(v)])),
  );
  const W = parameters.layers.map((layer) => fromWire(layer.W));
  const b = parameters.layers.map((layer) => fromWire(layer.b));
  const A = (l) => (l === 0 ? batch.X : layers[l - 1].A);

  heading(root, `The batch: m = ${m} example${m === 1 ? '' : 's'}, one per column`);
  equation(root, {
    id: 'batch',
    tex: `A^{[0]} = X = ${shown('A0', batch.X)} \\qquad Y = ${shown('Y', batch.Y)}`,
  });

  heading(root, 'Forward propagation');
  for (let l = 1; l <= L; l += 1) {
    const layer = layers[l - 1];
    equation(root, {
      id: `Z${l}`,
      caption: `Layer ${l}: a linear step, W[${l}] times the previous activations plus b[${l}] (broadcast over the columns)`,
      tex: `${sym('Z', l)} = ${sym('W', l)} ${sym('A', l - 1)} + ${sym('b', l)} = ${shown(`W${l}`, W[l - 1])} ${shown(`A${l - 1}`, A(l - 1))} + ${shown(`b${l}`, b[l - 1])} = ${shown(`Z${l}`, layer.Z)}`,
    });
    equation(root, {
      id: `A${l}`,
      caption: `then the activation ${acts[l - 1]}, entry by entry${acts[l - 1] === 'softmax' ? ' (softmax: over each column)' : ''}`,
      tex: `${sym('A', l)} = ${ACTIVATION_TEX[acts[l - 1]]}(${sym('Z', l)}) = ${shown(`A${l}`, layer.A)}`,
    });
    if (layer.D) {
      const keep = [network.dropout.keep_prob].flat();
      const k = keep[Math.min(l - 1, keep.length - 1)];
      equation(root, {
        id: `D${l}`,
        caption: `inverted dropout on layer ${l}: the mask D[${l}] (rand < keep_prob = ${k}) switches units off for this pass, and the kept ones are scaled by 1/keep_prob (the backward pass multiplies dA[${l}] by the same D[${l}] / keep_prob)`,
        tex: `${sym('D', l)} = ${shown(`D${l}`, layer.D)}, \\qquad ${sym('A', l)} \\leftarrow \\frac{${sym('A', l)} * ${sym('D', l)}}{${k}}`,
      });
    }
  }

  const output = acts[L - 1];
  const canonical = isCanonical(output, network.loss);
  const { lossName, lines, result } = derive(output, network.loss);
  heading(root, 'The cost');
  equation(root, {
    id: 'cost',
    caption: `${lossName}, averaged over the ${m} examples${lambd > 0 ? ', plus the L2 term' : ''}`,
    tex: `J = \\frac{1}{m} \\sum_{i=1}^{m} \\mathcal{L}\\big(a^{[L](i)}, y^{(i)}\\big)${lambd > 0 ? ' + \\frac{\\lambda}{2m}\\sum_l \\lVert W^{[l]} \\rVert_F^2' : ''} = ${num(answer.cost)}`,
  });

  heading(root, `Backward propagation: dZ[L] by the chain rule (${output} output, ${lossName})`);
  const derivation = document.createElement('div');
  derivation.className = 'derivation';
  root.append(derivation);
  equation(derivation, {
    caption: 'For one example (one column), with a = A[L], y = Y, z = Z[L]:',
    tex: `\\begin{aligned} ${lines.map((line) => `& ${line}`).join(' \\\\[0.4em] ')} \\end{aligned}`,
  });
  const last = layers[L - 1];
  equation(derivation, {
    id: `dA${L}`,
    caption: `On this batch the loss's own derivative dA[L] = ∂𝓛/∂A[L] is${canonical ? ' (it is never needed: multiplied by the slope of the output activation it becomes A[L] − Y)' : ':'}`,
    tex: `${sym('dA', L)} = ${shown(`dA${L}`, last.dA)}`,
  });
  if (canonical) {
    equation(root, {
      id: `dZ${L}`,
      caption: 'so for the whole batch, column by column (the canonical pair: the derivatives cancel)',
      tex: `${result} = ${shown(`A${L}`, last.A)} - ${shown('Y', batch.Y)} = ${shown(`dZ${L}`, last.dZ)}`,
    });
  } else {
    equation(root, {
      id: `dZ${L}`,
      caption: 'not a canonical pair, so the general chain rule: dA[L] (from the loss) times the slope of the output activation',
      tex: `${result} = ${shown(`dZ${L}`, last.dZ)}`,
    });
  }

  for (let l = L; l >= 1; l -= 1) {
    const layer = layers[l - 1];
    heading(root, `Layer ${l}`);
    const l2 = lambd > 0 ? ` + \\frac{\\lambda}{m} ${sym('W', l)}` : '';
    const dWBlock = equation(root, {
      id: `dW${l}`,
      caption: `dW[${l}]: the gradient averaged over the batch, so 1/m enters here${lambd > 0 ? ', with the L2 term' : ''}`,
      tex: `${sym('dW', l)} = \\frac{1}{m} ${sym('dZ', l)} ${sym('A', l - 1, 'T')}${l2} = \\frac{1}{${m}} ${shown(`dZ${l}`, layer.dZ)} ${shown(`A${l - 1}T`, transpose(A(l - 1)))}${lambd > 0 ? ` + \\frac{${lambd}}{${m}}${shown(`W${l}`, W[l - 1])}` : ''} = ${shown(`dW${l}`, layer.dW)}`,
    });
    if (showTypos) {
      const typo = dWWithOutputActivations({ dZ: layer.dZ, AL: last.A, W: W[l - 1], dW: layer.dW, lambd, m });
      const mistyped = `${sym('dW', l)} \\overset{?}{=} \\frac{1}{m} ${sym('dZ', l)} ${sym('A', 'L', 'T')}`;
      const tex = typo.fits
        ? `${mistyped} = ${shown(`typo_dW${l}`, typo.value)}`
        : `${mistyped}: (${layer.dZ.rows}\\times ${m})(${m}\\times ${last.A.rows}) = ${shown(`typo_dW${l}`, typo.value)} \\;\\ne\\; ${layer.dW.rows}\\times ${layer.dW.cols}`;
      equation(dWBlock, {
        id: `typo-dW${l}`,
        className: 'typo',
        caption: typo.fits
          ? `The typo A[L]ᵀ in place of A[${l - 1}]ᵀ: here the shapes happen to fit, so only the numbers show it.`
          : `The typo A[L]ᵀ in place of A[${l - 1}]ᵀ: the product is ${typo.value.rows}×${typo.value.cols}, but W[${l}] is ${layer.dW.rows}×${layer.dW.cols}, so W[${l}] − α dW[${l}] cannot even be computed (mismatched shapes).`,
        tex,
        note: typo.fits ? verdict(typo.difference) : undefined,
      });
    }
    equation(root, {
      id: `db${l}`,
      caption: `db[${l}]: each row of dZ[${l}] summed over the examples, over m`,
      tex: `${sym('db', l)} = \\frac{1}{m} \\sum_{i=1}^{m} ${sym('dZ', l, '(i)')} = ${shown(`db${l}`, layer.db)}`,
    });
    if (l === 1) continue;
    const below = layers[l - 2];
    const dABlock = equation(root, {
      id: `dA${l - 1}`,
      caption: `dA[${l - 1}]: each unit of layer ${l - 1} feeds every unit of layer ${l}, so its gradient sums over them through the weights W[${l}] (transposed)`,
      tex: `${sym('dA', l - 1)} = ${sym('W', l, 'T')} ${sym('dZ', l)} = ${shown(`W${l}T`, transpose(W[l - 1]))} ${shown(`dZ${l}`, layer.dZ)} = ${shown(`dA${l - 1}`, below.dA)}`,
    });
    const gPrime = derivative(acts[l - 2]);
    if (showTypos) {
      const typo = dAWithGradientTransposed({ dW: layer.dW, dZ: layer.dZ, dA: below.dA });
      const block = equation(dABlock, {
        id: `typo-dA${l - 1}`,
        className: 'typo',
        caption: `The typo dW[${l}]ᵀ in place of W[${l}]ᵀ: the shapes always fit (${layer.dW.cols}×${layer.dW.rows} times ${layer.dZ.rows}×${m}), so nothing complains; the numbers are wrong.`,
        tex: `${sym('dA', l - 1)} \\overset{?}{=} ${sym('dW', l, 'T')} ${sym('dZ', l)} = ${shown(`typo_dA${l - 1}`, typo.value)}`,
        note: verdict(typo.difference),
      });
      if (gPrime) {
        const next = downstreamdW({
          dAWrong: typo.value,
          Z: below.Z,
          A: below.A,
          gPrime,
          APrev: A(l - 2),
          W: W[l - 2],
          dW: below.dW,
          lambd,
          m,
        });
        equation(block, {
          id: `typo-dW${l - 1}-downstream`,
          className: 'typo',
          caption: `…and what it does next: dW[${l - 1}] computed from that dA[${l - 1}], against the right dW[${l - 1}]`,
          tex: `${sym('dW', l - 1)} \\overset{?}{=} ${shown(`typo_next_dW${l - 1}`, next.value)}`,
          note: verdict(next.difference),
        });
      }
    }
    const slope = gPrime
      ? matrix(below.Z.rows, below.Z.cols, below.Z.data.map((z, i) => gPrime(z, below.A.data[i])))
      : null;
    equation(root, {
      id: `dZ${l - 1}`,
      caption: `dZ[${l - 1}]: through the activation ${acts[l - 2]}, entry by entry (* is the element-wise product)`,
      tex: slope
        ? `${sym('dZ', l - 1)} = ${sym('dA', l - 1)} * g'(${sym('Z', l - 1)}) = ${shown(`dA${l - 1}`, below.dA)} * ${shown(`gprime${l - 1}`, slope)} = ${shown(`dZ${l - 1}`, below.dZ)}`
        : `${sym('dZ', l - 1)} = \\text{the softmax Jacobian applied to } ${sym('dA', l - 1)} = ${shown(`dZ${l - 1}`, below.dZ)}`,
    });
  }
}
