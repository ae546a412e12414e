// Your own data: CSV text, one example per line, the features first and the label last.
// A first line that is not numbers is taken as a header.

export function parseCsv(text) {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const rows = lines.map((line) => line.split(/[,;\t]/).map((cell) => cell.trim()));
  if (rows.length > 0 && rows[0].some((cell) => !isNumber(cell))) rows.shift();
  if (rows.length < 2) throw new Error('The CSV needs at least two lines of numbers.');
  const width = rows[0].length;
  if (width < 2) throw new Error('Each line needs at least one feature and a label.');
  return rows.map((cells, index) => {
    if (cells.length !== width) {
      throw new Error(`Line ${index + 1} has ${cells.length} values; the first has ${width}.`);
    }
    const numbers = cells.map((cell) => {
      if (!isNumber(cell)) throw new Error(`Line ${index + 1}: "${cell}" is not a number.`);
      return Number(cell);
    });
    return { features: numbers.slice(0, -1), label: numbers[width - 1] };
  });
}

function isNumber(cell) {
  return cell !== '' && Number.isFinite(Number(cell));
}
