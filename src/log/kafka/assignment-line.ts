/** The one line logged per group assignment: who got what, what moved, how long the join took. */
export interface AssignmentInfo {
  group: string;
  topic: string;
  generation: number | undefined;
  /** This member's joins so far (1 = first). */
  join: number;
  partitions: number[];
  /** The partitions of this member's previous assignment. */
  before: number[];
  joinMs: number;
}

export function describeAssignment(a: AssignmentInfo): string {
  const now = new Set(a.partitions);
  const was = new Set(a.before);
  const gained = a.partitions.filter((p) => !was.has(p));
  const lost = a.before.filter((p) => !now.has(p));
  const list = (ps: number[]) => `[${ps.join(', ')}]`;
  return `kafka group ${a.group}: generation ${a.generation ?? '?'} (join ${a.join}, ${a.joinMs} ms): ${a.topic} partitions ${list(a.partitions)}, gained ${list(gained)}, lost ${list(lost)}`;
}
