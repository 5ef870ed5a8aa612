/**
 * /metrics of a gateway with workers: each worker's Prometheus text with a `worker` label on
 * every sample, merged family by family (the text format wants a family's samples together,
 * under one HELP and TYPE). Sums across workers are left to the query (sum without(worker)).
 */

interface Family {
  head: string[];
  samples: string[];
}

/** `name{a="b"} 1` -> `name{worker="2",a="b"} 1`; `name 1` -> `name{worker="2"} 1`. */
export function labelSample(line: string, worker: string): string {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  const label = `worker="${worker}"`;
  if (brace !== -1 && (space === -1 || brace < space)) {
    const close = line.indexOf('}', brace);
    const inner = line.slice(brace + 1, close);
    return `${line.slice(0, brace)}{${label}${inner ? ',' + inner : ''}${line.slice(close)}`;
  }
  return space === -1 ? line : `${line.slice(0, space)}{${label}}${line.slice(space)}`;
}

/** Merge texts by worker name (the order of families is the first text's, then new ones). */
export function mergeMetrics(texts: { worker: string; text: string }[]): string {
  const families = new Map<string, Family>();
  for (const { worker, text } of texts) {
    let current: Family | null = null;
    for (const line of text.split('\n')) {
      if (!line) continue;
      const m = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (m) {
        const name = m[2] as string;
        let f = families.get(name);
        if (!f) families.set(name, (f = { head: [], samples: [] }));
        if (!f.head.some((h) => h.startsWith(`# ${m[1]} `))) f.head.push(line);
        current = f;
        continue;
      }
      if (line.startsWith('#')) continue;
      if (!current) {
        const name = line.split(/[{ ]/, 1)[0] as string;
        current = families.get(name) ?? { head: [], samples: [] };
        families.set(name, current);
      }
      current.samples.push(labelSample(line, worker));
    }
  }
  let out = '';
  for (const f of families.values()) out += [...f.head, ...f.samples].join('\n') + '\n';
  return out;
}
