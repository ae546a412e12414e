// Matrices as the page holds them, {rows, cols, data} with data row-major in a typed array,
// and as the service sends them: nested lists or {shape, dtype, base64} (C order, little
// endian). Also the few products the "typos" view computes itself.

const ARRAYS = { float64: Float64Array, float32: Float32Array };

export function matrix(rows, cols, data = new Float64Array(rows * cols)) {
  return { rows, cols, data };
}

export function fromRows(rows) {
  const m = rows.length;
  const n = m === 0 ? 0 : rows[0].length;
  const data = new Float64Array(m * n);
  rows.forEach((row, i) => data.set(row, i * n));
  return matrix(m, n, data);
}

export function toRows(M) {
  const rows = [];
  for (let i = 0; i < M.rows; i += 1) rows.push(Array.from(M.data.subarray(i * M.cols, (i + 1) * M.cols)));
  return rows;
}

export const at = (M, i, j) => M.data[i * M.cols + j];

function bytesToBase64(bytes) {
  if (bytes.toBase64) return bytes.toBase64();
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function base64ToBytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The wire's base64 form of M in `dtype` (every browser this runs on is little-endian). */
export function toWire(M, dtype = 'float64') {
  const data = M.data instanceof ARRAYS[dtype] ? M.data : ARRAYS[dtype].from(M.data);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { shape: [M.rows, M.cols], dtype, base64: bytesToBase64(bytes) };
}

/** Either wire form into a matrix. */
export function fromWire(value) {
  if (Array.isArray(value)) return fromRows(value);
  const bytes = base64ToBytes(value.base64);
  const Type = ARRAYS[value.dtype];
  const [rows, cols] = value.shape;
  return matrix(rows, cols, new Type(bytes.buffer, bytes.byteOffset, rows * cols));
}

export function columns(M, start, count) {
  const out = matrix(M.rows, count);
  for (let i = 0; i < M.rows; i += 1) {
    for (let j = 0; j < count; j += 1) out.data[i * count + j] = at(M, i, start + j);
  }
  return out;
}

export function transpose(M) {
  const out = matrix(M.cols, M.rows);
  for (let i = 0; i < M.rows; i += 1) {
    for (let j = 0; j < M.cols; j += 1) out.data[j * M.rows + i] = at(M, i, j);
  }
  return out;
}

export function matmul(A, B) {
  if (A.cols !== B.rows) throw new Error(`(${A.rows}×${A.cols}) times (${B.rows}×${B.cols})`);
  const out = matrix(A.rows, B.cols);
  for (let i = 0; i < A.rows; i += 1) {
    for (let k = 0; k < A.cols; k += 1) {
      const a = at(A, i, k);
      for (let j = 0; j < B.cols; j += 1) out.data[i * B.cols + j] += a * at(B, k, j);
    }
  }
  return out;
}

export function map2(A, B, f) {
  const out = matrix(A.rows, A.cols);
  for (let i = 0; i < A.data.length; i += 1) out.data[i] = f(A.data[i], B.data[i]);
  return out;
}

export function scale(A, s) {
  return matrix(A.rows, A.cols, A.data.map((x) => x * s));
}

export const sameShape = (A, B) => A.rows === B.rows && A.cols === B.cols;

export function norm(A) {
  let sum = 0;
  for (const x of A.data) sum += x * x;
  return Math.sqrt(sum);
}

/** The gradient check's measure: ||a - b|| / (||a|| + ||b||). */
export function relativeDifference(a, b) {
  const denominator = norm(a) + norm(b);
  return denominator === 0 ? 0 : norm(map2(a, b, (x, y) => x - y)) / denominator;
}

export function extent(M) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of M.data) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}
