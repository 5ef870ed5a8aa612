/**
 * A listener that cannot bind its address (the port in use, an address not on this machine, a
 * port below 1024 without the right) is the user's to fix: a UserError naming the listener,
 * the address and the setting that moves it, not "listen EADDRINUSE" with a stack-trace notice
 * and exit 1. The gateway with workers and the admin listener said so already; the in-process
 * gateway and the billing API did not.
 */
import { UserError } from '../ground/errors.js';

export interface Listener {
  /** "the gateway", "the billing API" */
  what: string;
  host: string;
  port: number;
  /** The settings' prefix: "gateway" for --gateway-host / --gateway-port and METER_GATEWAY_*. */
  settings: 'gateway' | 'billing';
}

/** `e` as a UserError when it is about the address; otherwise `e` itself, to be rethrown. */
export function listenError(e: unknown, l: Listener): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const port = `--${l.settings}-port / METER_${l.settings.toUpperCase()}_PORT`;
  const host = `--${l.settings}-host / METER_${l.settings.toUpperCase()}_HOST`;
  const hint =
    code === 'EADDRINUSE'
      ? `stop what listens there or pick another ${port} (0 = any free port)`
      : code === 'EADDRNOTAVAIL'
        ? `set ${host} to an address of this machine (127.0.0.1, or 0.0.0.0 for all)`
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? `${host} is not a name or address this machine can resolve: give an address of this machine (127.0.0.1, or 0.0.0.0 for all)`
          : code === 'EACCES'
            ? `ports below 1024 need privileges: pick another ${port} (0 = any free port)`
            : null;
  return hint === null ? e : new UserError(`${l.what} cannot listen on ${l.host}:${l.port}: ${(e as Error).message}`, hint);
}
