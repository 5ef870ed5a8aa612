/**
 * Starting observability for a command: the Observability hub and its admin listener on
 * METER_ADMIN_HOST:METER_ADMIN_PORT (one per process; `meter dev` shares it across its roles).
 */
import type { MeterConfig } from '../config/config.js';
import type { Logger } from '../ground/logger.js';
import { UserError } from '../ground/errors.js';
import { Observability } from './observability.js';
import { startAdminServer, type AdminServer } from './admin-server.js';

export interface Observed {
  obs: Observability;
  admin: AdminServer;
  close(): Promise<void>;
}

export async function startObservability(cfg: MeterConfig, logger: Logger, role: string, opts: { accessLog?: boolean } = {}): Promise<Observed> {
  const obs = new Observability(role);
  if (opts.accessLog) obs.accessLog = logger.child('access');
  let admin: AdminServer;
  try {
    admin = await startAdminServer(obs, cfg.adminHost, cfg.adminPort);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES')
      throw new UserError(
        `the admin listener cannot listen on ${cfg.adminHost}:${cfg.adminPort}: ${err.message}`,
        'pick another --admin-port / METER_ADMIN_PORT (0 = any free port) or --admin-host',
      );
    throw e;
  }
  logger.info(`admin listener on ${admin.url} (/metrics /healthz /readyz /status /ops)`, { admin: admin.url });
  return {
    obs,
    admin,
    async close() {
      await admin.close();
      await obs.close();
    },
  };
}
