// Readiness probes for stack/run: one attempt, exit 0 when the service answers like a real client
// would need it to, non-zero (with the reason on stderr) otherwise. stack/run loops on these.
//   node stack/probe.mjs kafka 127.0.0.1:19092   -> metadata request answered (broker + controller up)
//   node stack/probe.mjs hdfs http://127.0.0.1:19870 -> a live DataNode with space, out of safe mode,
//                                                    WebHDFS answers GETFILESTATUS on /
const [what, where] = process.argv.slice(2);

async function kafka(brokers) {
  let kafkajs;
  try {
    kafkajs = await import('kafkajs');
  } catch (e) {
    // Not a readiness question: the probe cannot run (no `npm ci` yet). Exit 3 = give up now.
    process.stderr.write(`cannot load kafkajs for the Kafka probe (run npm ci in the repo first): ${e?.message ?? e}\n`);
    process.exit(3);
  }
  const { Kafka, logLevel } = kafkajs;
  // METER_PROBE_SASL=mechanism:user:password probes the SASL listener (stack/run kafka_sasl_ready).
  const sasl = process.env.METER_PROBE_SASL?.split(':');
  const admin = new Kafka({
    clientId: 'meter-stack-probe',
    brokers: brokers.split(','),
    ...(sasl ? { sasl: { mechanism: sasl[0], username: sasl[1], password: sasl.slice(2).join(':') } } : {}),
    // METER_PROBE_TLS_CA=file: TLS, trusting that CA (the SASL_SSL listener).
    ...(process.env.METER_PROBE_TLS_CA ? { ssl: { ca: [(await import('node:fs')).readFileSync(process.env.METER_PROBE_TLS_CA, 'utf8')] } } : {}),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1500,
    requestTimeout: 3000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (!cluster.brokers.length || cluster.controller == null) throw new Error('no broker/controller in metadata');
    await admin.listTopics();
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function getJson(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function hdfs(base) {
  const fs = await getJson(`${base}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState`);
  const st = fs.beans?.[0];
  if (!st) throw new Error('no FSNamesystemState bean yet');
  if (!(st.NumLiveDataNodes >= 1)) throw new Error(`live datanodes: ${st.NumLiveDataNodes}`);
  const info = (await getJson(`${base}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo`)).beans?.[0];
  if (!info) throw new Error('no NameNodeInfo bean yet');
  if (info.Safemode) throw new Error(`safe mode: ${info.Safemode}`);
  if (!(info.Free > 0)) throw new Error('datanode reports no free space yet');
  const s = await getJson(`${base}/webhdfs/v1/?op=GETFILESTATUS&user.name=meter`);
  if (s.FileStatus?.type !== 'DIRECTORY') throw new Error('GETFILESTATUS / did not answer a directory');
}

try {
  if (what === 'kafka') await kafka(where);
  else if (what === 'hdfs') await hdfs(where);
  else throw new Error(`unknown probe ${what}`);
  process.exit(0);
} catch (e) {
  process.stderr.write(`${what} not ready: ${e?.message ?? e}\n`);
  process.exit(1);
}
