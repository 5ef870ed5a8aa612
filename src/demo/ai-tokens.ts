/**
 * The demo's non-gateway meter: tokens of an AI feature (route planning), sent by the demo as
 * CloudEvents through the billing server's `POST /v1/events` (docs/events-api.md), counted by
 * the catalog's SUM meter on `ai.tokens` (docs/meters.md) and billed next to the calls. The
 * ground truth is what was accepted (202): per customer and model, the tokens sent.
 */
import { prng } from './traffic.js';
import type { Meter } from '../billing/meters.js';

export const AI_EVENT_TYPE = 'ai.tokens';
const MODELS = ['route-small', 'route-large'];
const BATCH = 100;

export interface AiTokensTruth {
  /** `${customer}\t${model}` -> tokens accepted. */
  tokens: Map<string, bigint>;
  /** Customer -> events accepted (each is also one event of api `ai.tokens` in usage_hourly). */
  events: Map<string, number>;
}

/** The catalog's meter that sums `tokens` of `ai.tokens` events, if it declares one. */
export function aiTokensMeter(meters: readonly Meter[]): Meter | null {
  return meters.find((m) => m.eventType === AI_EVENT_TYPE && m.aggregation === 'SUM' && m.valueProperty === '$.tokens') ?? null;
}

/** Send `perCustomer` events per customer (batches of 100), now; resolves with the tokens accepted. */
export async function sendAiTokens(billingUrl: string, token: string, customers: string[], perCustomer: number, seed: number): Promise<AiTokensTruth> {
  const r = prng(seed ^ 0x5eed);
  const truth: AiTokensTruth = { tokens: new Map(), events: new Map() };
  const now = new Date().toISOString();
  for (const c of customers)
    for (let i = 0; i < perCustomer; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, perCustomer - i) }, (_, k) => {
        const model = MODELS[Math.floor(r() * MODELS.length)] ?? 'route-small';
        return {
          specversion: '1.0',
          id: `plan-${c}-${i + k}`,
          source: 'demo/route-planner',
          type: AI_EVENT_TYPE,
          subject: c,
          time: now,
          data: { tokens: 1 + Math.floor(r() * 4000), model },
        };
      });
      const res = await fetch(`${billingUrl}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(batch),
      });
      const body = (await res.json()) as { results?: { index: number; status: string }[]; error?: string };
      if (res.status !== 202) throw new Error(`POST /v1/events: ${res.status} ${body.error ?? ''}`);
      for (const x of body.results ?? []) {
        const e = batch[x.index];
        if (x.status !== 'accepted' || !e) continue;
        const key = `${c}\t${e.data.model}`;
        truth.tokens.set(key, (truth.tokens.get(key) ?? 0n) + BigInt(e.data.tokens));
        truth.events.set(c, (truth.events.get(c) ?? 0) + 1);
      }
    }
  return truth;
}
