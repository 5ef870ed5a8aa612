/**
 * The longest delay a Node timer holds: setTimeout and setInterval take a signed 32-bit count of
 * ms, and anything longer becomes 1 ms (with a TimeoutOverflowWarning), so a "30d" interval was
 * a busy loop. Every duration that ends up in a timer is kept at or below this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a duration flag feeding a timer accepts: 24 days, the whole days within MAX_TIMER_MS (~24.8 d). */
export const MAX_TIMER_FLAG_MS = 24 * 86_400_000;
