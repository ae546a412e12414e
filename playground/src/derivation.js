// The chain-rule derivation of dZ[L] for the network's output activation and loss, as TeX
// lines. The canonical pairs end at A[L] - Y; any other pair at dA[L] * g'(Z[L]).

export const CANONICAL = {
  sigmoid: 'binary_cross_entropy',
  softmax: 'categorical_cross_entropy',
  linear: 'mean_squared_error',
};

const LOSS = {
  binary_cross_entropy: {
    name: 'binary cross-entropy',
    tex: '\\mathcal{L}(a, y) = -\\big(y \\log a + (1 - y) \\log(1 - a)\\big)',
    dA: '\\frac{\\partial \\mathcal{L}}{\\partial a} = -\\frac{y}{a} + \\frac{1 - y}{1 - a} = \\frac{a - y}{a(1 - a)}',
  },
  categorical_cross_entropy: {
    name: 'categorical cross-entropy',
    tex: '\\mathcal{L}(a, y) = -\\sum_k y_k \\log a_k',
    dA: '\\frac{\\partial \\mathcal{L}}{\\partial a_k} = -\\frac{y_k}{a_k}',
  },
  mean_squared_error: {
    name: 'mean squared error',
    tex: '\\mathcal{L}(a, y) = \\tfrac12 (a - y)^2 \\quad\\text{(the cost is } \\tfrac{1}{2m}\\textstyle\\sum (A - Y)^2\\text{)}',
    dA: '\\frac{\\partial \\mathcal{L}}{\\partial a} = a - y',
  },
};

const ACTIVATION = {
  sigmoid: { tex: 'a = \\sigma(z) = \\frac{1}{1 + e^{-z}}', dz: "\\frac{da}{dz} = \\sigma(z)\\,(1 - \\sigma(z)) = a(1 - a)" },
  tanh: { tex: 'a = \\tanh z', dz: '\\frac{da}{dz} = 1 - a^2' },
  relu: { tex: 'a = \\max(0, z)', dz: '\\frac{da}{dz} = 1 \\text{ if } z > 0 \\text{ else } 0' },
  leaky_relu: { tex: 'a = \\max(0.01 z, z)', dz: '\\frac{da}{dz} = 1 \\text{ if } z > 0 \\text{ else } 0.01' },
  linear: { tex: 'a = z', dz: '\\frac{da}{dz} = 1' },
  softmax: {
    tex: 'a_k = \\frac{e^{z_k}}{\\sum_j e^{z_j}}',
    dz: '\\frac{\\partial a_k}{\\partial z_i} = a_k(\\delta_{ki} - a_i)',
  },
};

export const isCanonical = (output, loss) => CANONICAL[output] === loss;

/** {lossName, lines: [TeX], result: TeX} for one example's column of dZ[L]. */
export function derive(output, loss) {
  const l = LOSS[loss];
  const g = ACTIVATION[output];
  const lines = [`\\text{loss: } ${l.tex}`, `\\text{output: } ${g.tex}`, l.dA, g.dz];
  if (output === 'sigmoid' && loss === 'binary_cross_entropy') {
    lines.push('dz = \\frac{\\partial \\mathcal{L}}{\\partial a}\\,\\frac{da}{dz} = \\frac{a - y}{a(1 - a)} \\cdot a(1 - a) = a - y');
  } else if (output === 'softmax' && loss === 'categorical_cross_entropy') {
    lines.push(
      'dz_i = \\sum_k \\frac{\\partial \\mathcal{L}}{\\partial a_k}\\frac{\\partial a_k}{\\partial z_i} = -\\sum_k \\frac{y_k}{a_k}\\, a_k(\\delta_{ki} - a_i) = -y_i + a_i \\sum_k y_k = a_i - y_i \\quad(\\textstyle\\sum_k y_k = 1)',
    );
  } else if (output === 'linear' && loss === 'mean_squared_error') {
    lines.push('dz = \\frac{\\partial \\mathcal{L}}{\\partial a}\\,\\frac{da}{dz} = (a - y) \\cdot 1 = a - y');
  } else if (output === 'softmax') {
    lines.push('dz_i = \\sum_k da_k\\, a_k(\\delta_{ki} - a_i) = a_i\\big(da_i - \\textstyle\\sum_k a_k\\, da_k\\big) \\quad\\text{(no cancellation: not the canonical pair)}');
  } else {
    lines.push("dz = \\frac{\\partial \\mathcal{L}}{\\partial a}\\,\\frac{da}{dz} = da \\cdot g'(z) \\quad\\text{(no cancellation: not the canonical pair)}");
  }
  const result = isCanonical(output, loss)
    ? 'dZ^{[L]} = A^{[L]} - Y'
    : "dZ^{[L]} = dA^{[L]} * g'(Z^{[L]})";
  return { lossName: l.name, lines, result };
}

/** g'(Z) entry by entry, from Z and A = g(Z) (softmax has a Jacobian instead: null). */
export function derivative(activation) {
  return {
    sigmoid: (z, a) => a * (1 - a),
    tanh: (z, a) => 1 - a * a,
    relu: (z) => (z > 0 ? 1 : 0),
    leaky_relu: (z) => (z > 0 ? 1 : 0.01),
    linear: () => 1,
  }[activation] ?? null;
}

export const ACTIVATION_TEX = {
  sigmoid: '\\sigma',
  tanh: '\\tanh',
  relu: '\\operatorname{relu}',
  leaky_relu: '\\operatorname{leaky\\_relu}',
  linear: '\\operatorname{linear}',
  softmax: '\\operatorname{softmax}',
};
