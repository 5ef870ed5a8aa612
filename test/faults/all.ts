/**
 * Every fault scenario, in the order the suite runs them. A module of its own: the lake and spool
 * scenarios import helpers from scenarios.ts, so listing them there made an import cycle (loading
 * scenarios-lake.js first read ALL before its parts existed).
 */
import {
  gatewayKillBatched,
  gatewayKillStrict,
  hdfsOutage,
  killIngest,
  kafkaOutage,
  postgresOutage,
  rebalance,
  redisOutage,
  type ScenarioDef,
} from './scenarios.js';
import { lakeScenarios } from './scenarios-lake.js';
import { SPOOL_SCENARIOS } from './scenarios-spool.js';
import { SCALE_SCENARIOS } from './scenarios-scale.js';
import { EVENTS_SCENARIOS } from './scenarios-events.js';

export const ALL: ScenarioDef[] = [
  killIngest,
  rebalance,
  kafkaOutage,
  hdfsOutage,
  postgresOutage,
  redisOutage,
  gatewayKillStrict,
  gatewayKillBatched,
  ...lakeScenarios,
  ...SPOOL_SCENARIOS,
  ...SCALE_SCENARIOS,
  ...EVENTS_SCENARIOS,
];
