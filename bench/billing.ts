import type { BenchOptions, Row } from './lib.js';
export async function benchBilling(_o: BenchOptions): Promise<Row[]> {
  throw new Error('not written yet');
}
