/** test/support/net.ts freePort: ports outside the kernel's ephemeral range, never the same one to two processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort } from '../support/net.js';

const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

test('freePort: below the ephemeral range, free to listen on, never the same twice', async () => {
  const ports: number[] = [];
  for (let i = 0; i < 100; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p >= 21000 && p < ephemeralLow, `port ${p}`);
  const s = createServer();
  await new Promise<void>((r) => s.listen(ports[0], '127.0.0.1', r));
  await new Promise<void>((r) => s.close(() => r()));
});

test('freePort: two processes picking at once get disjoint ports', async () => {
  const net = new URL('../support/net.js', import.meta.url).href;
  // Each child holds its ports until both have picked (a claim ends with its process), then exits
  // when its stdin closes, which removes its claims.
  const script = `import(${JSON.stringify(net)}).then(async (m) => { const out = []; for (let i = 0; i < 300; i++) out.push(await m.freePort()); console.log(JSON.stringify(out)); process.stdin.on('end', () => process.exit(0)).resume(); })`;
  const children = [0, 1].map(() => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const exited = children.map((c) => new Promise((r) => c.once('exit', r)));
  try {
    const [a, b] = await Promise.all(
      children.map(
        (c) =>
          new Promise<number[]>((resolve, reject) => {
            let out = '';
            c.stdout!.setEncoding('utf8').on('data', (s: string) => {
              out += s;
              if (out.includes('\n')) resolve(JSON.parse(out) as number[]);
            });
            c.once('exit', (code) => reject(new Error(`picker exited with ${code} before answering`)));
          }),
      ),
    );
    assert.equal(a!.length, 300);
    const inB = new Set(b);
    assert.deepEqual(
      a!.filter((p) => inB.has(p)),
      [],
      'no port handed to both',
    );
  } finally {
    for (const c of children) c.stdin!.end();
    await Promise.all(exited);
  }
});
