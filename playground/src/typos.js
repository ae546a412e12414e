// The two typos of the question this service grew from, computed on the real matrices so
// their consequences show: dW[l] = (1/m) dZ[l] A[L]^T (A[L] where A[l-1] belongs) and
// dA[l-1] = dW[l]^T dZ[l] (dW where W belongs). The service computes only the correct
// equations, so these few products are done here, from the numbers /gradients returned.

import { map2, matmul, matrix, relativeDifference, sameShape, scale, transpose } from './matrix.js';

export const THRESHOLD = 2e-7; // the course's gradient-check threshold, as /gradient-check's

function withL2(M, W, lambd, m) {
  return lambd === 0 ? M : map2(M, W, (x, w) => x + (lambd / m) * w);
}

/** dW[l] with A[L]^T: its shape, and if that happens to fit W[l], its numbers and error. */
export function dWWithOutputActivations({ dZ, AL, W, dW, lambd, m }) {
  const value = scale(matmul(dZ, transpose(AL)), 1 / m);
  if (!sameShape(value, W)) return { value, fits: false };
  const typo = withL2(value, W, lambd, m);
  return { value: typo, fits: true, difference: relativeDifference(typo, dW) };
}

/** dA[l-1] with dW[l]^T: always the right shape, so only the numbers give it away. */
export function dAWithGradientTransposed({ dW, dZ, dA }) {
  const value = matmul(transpose(dW), dZ);
  return { value, difference: relativeDifference(value, dA) };
}

/** What the wrong dA[l-1] does next: dZ[l-1], then dW[l-1], compared with the right dW[l-1]. */
export function downstreamdW({ dAWrong, Z, A, gPrime, APrev, W, dW, lambd, m }) {
  const slope = matrix(Z.rows, Z.cols, Z.data.map((z, i) => gPrime(z, A.data[i])));
  const dZWrong = map2(dAWrong, slope, (x, s) => x * s);
  const value = withL2(scale(matmul(dZWrong, transpose(APrev)), 1 / m), W, lambd, m);
  return { value, difference: relativeDifference(value, dW) };
}
