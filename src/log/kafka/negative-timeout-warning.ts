/**
 * Hides one warning kafkajs 2.2.4 makes Node 24 print on every client that connects:
 * "TimeoutNegativeWarning: -1796518658985 is a negative number". Its request queue
 * (kafkajs/src/network/requestQueue/index.js, scheduleCheckPendingRequests) schedules the next
 * check after `throttledUntil - Date.now()` ms, and `throttledUntil` is 0 unless the broker
 * throttles: a negative delay, which Node clamps to 1 ms, as older Node did without a word. The
 * check runs as kafkajs meant; only the line on stderr goes. Every other warning, kafkajs's
 * included, is printed as Node prints it.
 */

const FROM_REQUEST_QUEUE = /kafkajs[\\/]src[\\/]network[\\/]requestQueue[\\/]/;

/** Whether `w` is that warning (kafkajs's request queue, a negative timeout). */
export function isKafkajsNegativeTimeout(w: Error): boolean {
  return w.name === 'TimeoutNegativeWarning' && FROM_REQUEST_QUEUE.test(w.stack ?? '');
}

let installed = false;

/** Once per process: Node's own 'warning' listeners see every warning but that one. */
export function hideKafkajsNegativeTimeoutWarning(): void {
  if (installed) return;
  installed = true;
  const printers = process.listeners('warning');
  for (const l of printers) process.removeListener('warning', l);
  process.on('warning', (w) => {
    if (isKafkajsNegativeTimeout(w)) return;
    for (const l of printers) l(w);
  });
}
