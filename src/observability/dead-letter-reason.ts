/**
 * The reason label of meter_dead_letters_total: the dead-letter reasons carry values (times,
 * field names), so they are folded into a few kinds to keep the label set bounded
 * (reasons are made in src/pipeline/accept.ts).
 */
export const DEAD_LETTER_REASONS = ['malformed', 'too_old', 'in_future', 'unknown_customer', 'other'] as const;

export function deadLetterReason(reason: string): string {
  if (reason.startsWith('malformed event')) return 'malformed';
  if (/before its log time/.test(reason)) return 'too_old';
  if (/after its log time/.test(reason)) return 'in_future';
  if (/unknown customer/i.test(reason)) return 'unknown_customer';
  return 'other';
}
