/**
 * A Redis Lua script kept as a real .lua file in the source tree (BullMQ style), loaded once
 * with SCRIPT LOAD and called with EVALSHA. Redis may forget scripts (restart, failover,
 * SCRIPT FLUSH): on NOSCRIPT we load again and retry once. The reply is parsed by a typed
 * function so callers never handle raw arrays.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { assetPath } from '../config/assets.js';

export type ScriptArg = string | number;

export class LuaScript<TArgs extends readonly ScriptArg[], TResult> {
  /** SHA-1 of the source: what EVALSHA needs, computed locally and checked against SCRIPT LOAD. */
  readonly sha: string;
  /** How often Redis had forgotten the script (NOSCRIPT) and we loaded it again. */
  reloads = 0;
  private loaded = new WeakMap<Redis, Promise<void>>();

  constructor(
    readonly name: string,
    readonly source: string,
    readonly numberOfKeys: number,
    private readonly parse: (reply: unknown) => TResult,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Read `src/limiter/<file>` (any path relative to the package root) from the source tree. */
  static fromAsset<TArgs extends readonly ScriptArg[], TResult>(
    relPath: string,
    numberOfKeys: number,
    parse: (reply: unknown) => TResult,
  ): LuaScript<TArgs, TResult> {
    const source = readFileSync(assetPath(relPath), 'utf8');
    const name = relPath
      .split('/')
      .pop()!
      .replace(/\.lua$/, '');
    return new LuaScript<TArgs, TResult>(name, source, numberOfKeys, parse);
  }

  /** SCRIPT LOAD (once per client, again after NOSCRIPT). */
  load(redis: Redis): Promise<void> {
    let p = this.loaded.get(redis);
    if (!p) {
      p = (redis.script('LOAD', this.source) as Promise<string>).then((sha) => {
        if (sha !== this.sha) throw new Error(`lua script ${this.name}: SCRIPT LOAD returned ${sha}, expected ${this.sha}`);
      });
      // A failed load (Redis down) must not stick: the next call tries again.
      p.catch(() => this.loaded.delete(redis));
      this.loaded.set(redis, p);
    }
    return p;
  }

  async run(redis: Redis, keys: readonly string[], args: TArgs): Promise<TResult> {
    if (keys.length !== this.numberOfKeys) throw new Error(`lua script ${this.name}: expected ${this.numberOfKeys} keys, got ${keys.length}`);
    await this.load(redis);
    try {
      return this.parse(await redis.evalsha(this.sha, this.numberOfKeys, ...keys, ...args));
    } catch (e) {
      if (!isNoScript(e)) throw e;
      this.reloads++;
      this.loaded.delete(redis);
      await this.load(redis);
      return this.parse(await redis.evalsha(this.sha, this.numberOfKeys, ...keys, ...args));
    }
  }
}

function isNoScript(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith('NOSCRIPT');
}
