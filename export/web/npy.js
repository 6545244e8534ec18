// Reads NumPy .npy files (format 1.0-3.0, little-endian float32 or float64,
// C order) into a Float32Array. Used for uploaded noise [N, T, z].

/**
 * @param {ArrayBuffer} buffer the bytes of a .npy file.
 * @return {{shape: number[], data: Float32Array}}
 * @throws {Error} naming what is wrong with the file.
 */
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];  // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) {
    throw new Error('not a .npy file (no \\x93NUMPY magic); save the noise with numpy.save');
  }
  const major = bytes[6];
  const view = new DataView(buffer);
  let headerLength, offset;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLength = view.getUint32(8, true);
    offset = 12;
  } else {
    throw new Error(`unsupported .npy format version ${major}`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
      bytes.subarray(offset, offset + headerLength));
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeMatch = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeMatch) throw new Error(`cannot read the .npy header: ${header}`);
  if (fortran[1] === 'True') throw new Error('the array is in Fortran order; save a C-ordered array');
  const shape = shapeMatch[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataOffset = offset + headerLength;
  let data;
  if (descr[1] === '<f4') {
    data = new Float32Array(buffer.slice(dataOffset, dataOffset + 4 * count));
  } else if (descr[1] === '<f8') {
    data = Float32Array.from(new Float64Array(buffer.slice(dataOffset, dataOffset + 8 * count)));
  } else {
    throw new Error(`dtype ${descr[1]} is not float32 or float64 (little-endian)`);
  }
  if (data.length !== count) throw new Error(`the file is truncated: ${data.length} of ${count} values`);
  return {shape, data};
}
