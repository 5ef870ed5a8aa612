/**
 * The /ops dashboard: one self-contained page (no CDN, no Grafana) that reads /ops/data, which
 * is meter's own metrics as JSON, every few seconds (?refresh=<seconds>, default 2). Rates and
 * latency quantiles come from the difference between two readings; before the second reading,
 * from the totals since start. Laid out in a grid that folds to one column on a phone.
 */
export const OPS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meter ops</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --mute:#6b7385; --ok:#1f8a4c; --bad:#c62828; --warn:#b26a00; --bar:#3b6fd8; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; flex-wrap:wrap; gap:8px 16px; align-items:baseline; padding:12px 16px; background:#1d2330; color:#fff; }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:#c7ccd8; font-size:12px; }
  main { display:grid; grid-template-columns:repeat(auto-fill, minmax(min(100%, 300px), 1fr)); gap:12px; padding:12px; }
  section { background:var(--card); border-radius:8px; padding:12px; box-shadow:0 1px 2px rgba(0,0,0,.08); min-width:0; }
  h2 { font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:var(--mute); margin:0 0 8px; }
  .big { font-size:28px; font-weight:600; font-variant-numeric:tabular-nums; }
  .unit { font-size:13px; color:var(--mute); font-weight:400; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  td, th { padding:3px 4px; text-align:left; border-bottom:1px solid #eef0f3; overflow-wrap:anywhere; }
  td.n, th.n { text-align:right; }
  .barrow { display:grid; grid-template-columns:minmax(0, 9em) 1fr 5em; gap:6px; align-items:center; margin:3px 0; }
  .barrow .lbl { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .barrow .v { text-align:right; font-variant-numeric:tabular-nums; }
  .bar { height:10px; background:#e7ebf3; border-radius:5px; overflow:hidden; }
  .bar > i { display:block; height:100%; background:var(--bar); }
  .ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); }
  .empty { color:var(--mute); font-style:italic; }
  #error { display:none; background:#fdecea; color:var(--bad); padding:8px 16px; }
</style>
</head>
<body>
<header><h1>meter ops</h1><span class="meta" id="role">role …</span><span class="meta" id="updated">waiting for data…</span></header>
<div id="error" role="alert"></div>
<main>
  <section id="requests"><h2>Requests/s by decision</h2><div class="big" id="rps">–</div><div id="decisions"></div></section>
  <section id="latency"><h2>Added latency (meter's own time)</h2><table><tr><th></th><th class="n">p50</th><th class="n">p99</th></tr>
    <tr><td>meter</td><td class="n" id="added-p50">–</td><td class="n" id="added-p99">–</td></tr>
    <tr><td>upstream</td><td class="n" id="up-p50">–</td><td class="n" id="up-p99">–</td></tr></table></section>
  <section id="spool"><h2>Spool</h2><div class="big" id="spool-pct">–</div><div class="bar"><i id="spool-bar" style="width:0"></i></div><div id="spool-detail" class="meta"></div></section>
  <section id="lag"><h2>Consumer lag per partition</h2><div id="lag-table"></div></section>
  <section id="deadletters"><h2>Dead letters by reason</h2><div id="dl"></div></section>
  <section id="freshness"><h2>Freshness (data complete lag)</h2><div class="big" id="fresh">–</div></section>
  <section id="rollup"><h2>Rollup pending hours</h2><div class="big" id="pending">–</div><div id="rollup-detail"></div></section>
  <section id="customers"><h2>Top customers, last hour</h2><div id="top"></div></section>
  <section id="backends"><h2>Backends</h2><div id="backend-list"></div></section>
</main>
<script>
(function () {
  var refresh = Math.max(0.5, Number(new URLSearchParams(location.search).get('refresh')) || 2);
  var prev = null;
  var $ = function (id) { return document.getElementById(id); };
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); }
  function metric(d, name) { for (var i = 0; i < d.metrics.length; i++) if (d.metrics[i].name === name) return d.metrics[i]; return null; }
  function values(d, name) { var m = metric(d, name); return m ? m.values : []; }
  function total(d, name) { return values(d, name).reduce(function (a, v) { return a + v.value; }, 0); }
  function by(d, name, label, filter) {
    var out = {};
    values(d, name).forEach(function (v) { if (filter && !filter(v)) return; var k = v.labels[label]; out[k] = (out[k] || 0) + v.value; });
    return out;
  }
  function fmtNum(n) { return n >= 100 ? Math.round(n).toLocaleString('en') : n >= 10 ? n.toFixed(1) : n.toFixed(2); }
  function fmtSec(s) { if (s == null || !isFinite(s)) return '–'; return s < 0.001 ? (s * 1e6).toFixed(0) + ' µs' : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s'; }
  function fmtBytes(b) { var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; var i = 0; while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; } return (i ? b.toFixed(1) : b) + ' ' + u[i]; }
  function bars(obj, fmt) {
    var keys = Object.keys(obj).sort(function (a, b) { return obj[b] - obj[a]; });
    if (!keys.length) return '<div class="empty">none</div>';
    var max = Math.max.apply(null, keys.map(function (k) { return obj[k]; })) || 1;
    return keys.map(function (k) {
      return '<div class="barrow" data-key="' + esc(k) + '"><span class="lbl" title="' + esc(k) + '">' + esc(k) + '</span><span class="bar"><i style="width:' + (100 * obj[k] / max).toFixed(1) + '%"></i></span><span class="v">' + fmt(obj[k]) + '</span></div>';
    }).join('');
  }
  /** Quantile from cumulative buckets [{le, count}] (linear inside the bucket, like histogram_quantile). */
  function quantile(q, buckets) {
    var n = buckets.length ? buckets[buckets.length - 1].count : 0;
    if (!n) return null;
    var rank = q * n, lo = 0, below = 0;
    for (var i = 0; i < buckets.length; i++) {
      var b = buckets[i];
      if (b.count >= rank) {
        if (b.le === Infinity) return lo;
        var inb = b.count - below;
        return lo + (b.le - lo) * (inb ? (rank - below) / inb : 0);
      }
      lo = b.le; below = b.count;
    }
    return lo;
  }
  function buckets(d, name) {
    return values(d, name).filter(function (v) { return v.metricName === name + '_bucket'; }).map(function (v) {
      return { le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), count: v.value };
    }).sort(function (a, b) { return a.le - b.le; });
  }
  function windowBuckets(name, d, p) {
    var cur = buckets(d, name);
    if (!p) return cur;
    var old = buckets(p, name);
    var delta = cur.map(function (b, i) { return { le: b.le, count: b.count - (old[i] ? old[i].count : 0) }; });
    return delta.length && delta[delta.length - 1].count > 0 ? delta : cur;
  }
  function render(d, p) {
    var dt = p ? (d.at - p.at) / 1000 : 0;
    $('role').textContent = 'role ' + d.role;
    $('updated').textContent = 'updated ' + new Date(d.at).toLocaleTimeString() + ' · every ' + refresh + ' s';
    // Requests per second by decision (totals until a second reading exists).
    var cur = by(d, 'meter_gateway_requests_total', 'decision');
    var rate = {};
    if (p && dt > 0) { var old = by(p, 'meter_gateway_requests_total', 'decision'); Object.keys(cur).forEach(function (k) { rate[k] = Math.max(0, (cur[k] - (old[k] || 0)) / dt); }); }
    var shown = p ? rate : cur;
    var sum = Object.keys(shown).reduce(function (a, k) { return a + shown[k]; }, 0);
    $('rps').innerHTML = p ? fmtNum(sum) + ' <span class="unit">req/s</span>' : fmtNum(sum) + ' <span class="unit">requests so far</span>';
    $('decisions').innerHTML = bars(shown, fmtNum);
    // Latency.
    var a = windowBuckets('meter_gateway_added_latency_seconds', d, p), u = windowBuckets('meter_upstream_latency_seconds', d, p);
    $('added-p50').textContent = fmtSec(quantile(0.5, a)); $('added-p99').textContent = fmtSec(quantile(0.99, a));
    $('up-p50').textContent = fmtSec(quantile(0.5, u)); $('up-p99').textContent = fmtSec(quantile(0.99, u));
    // Spool.
    var sb = total(d, 'meter_spool_bytes'), sm = total(d, 'meter_spool_max_bytes');
    var pct = sm ? 100 * sb / sm : 0;
    $('spool-pct').innerHTML = (sm ? (pct === 0 ? '0' : pct.toFixed(pct < 1 ? 2 : 0)) + '%' : '–') + ' <span class="unit">full</span>';
    $('spool-pct').className = 'big ' + (pct >= 50 ? 'bad' : pct > 0 ? 'warn' : 'ok');
    $('spool-bar').style.width = Math.min(100, pct) + '%';
    $('spool-detail').textContent = sm ? fmtBytes(sb) + ' of ' + fmtBytes(sm) + ' · ' + total(d, 'meter_spool_events') + ' events waiting · ' + total(d, 'meter_events_spooled_total') + ' spooled since start' : 'no gateway in this process';
    // Lag.
    var lag = values(d, 'meter_consumer_lag').slice().sort(function (x, y) { return x.labels.role < y.labels.role ? -1 : x.labels.role > y.labels.role ? 1 : Number(x.labels.partition) - Number(y.labels.partition); });
    $('lag-table').innerHTML = lag.length ? '<table><tr><th>consumer</th><th class="n">partition</th><th class="n">lag</th></tr>' + lag.map(function (v) {
      return '<tr><td>' + esc(v.labels.role) + '</td><td class="n">' + esc(v.labels.partition) + '</td><td class="n ' + (v.value > 0 ? 'warn' : 'ok') + '">' + v.value.toLocaleString('en') + '</td></tr>';
    }).join('') + '</table>' : '<div class="empty">no consumer in this process</div>';
    // Dead letters.
    $('dl').innerHTML = bars(by(d, 'meter_dead_letters_total', 'reason'), function (n) { return n.toLocaleString('en'); });
    // Freshness.
    var f = values(d, 'meter_data_complete_lag_seconds');
    $('fresh').innerHTML = f.length ? fmtSec(f[0].value) + ' <span class="unit">behind now</span>' : '<span class="empty">no data complete yet</span>';
    $('fresh').className = 'big ' + (f.length && f[0].value > 300 ? 'bad' : 'ok');
    // Rollup.
    $('pending').textContent = String(total(d, 'meter_rollup_pending_hours'));
    var rc = values(d, 'meter_rollup_hour_seconds').filter(function (v) { return v.metricName === 'meter_rollup_hour_seconds_count'; });
    $('rollup-detail').textContent = rc.length ? rc[0].value + ' hours rolled up since start' : '';
    // Top customers.
    var top = values(d, 'meter_gateway_top_customer_calls').slice().sort(function (x, y) { return y.value - x.value; });
    $('top').innerHTML = top.length ? '<table><tr><th>customer</th><th class="n">calls</th></tr>' + top.map(function (v) {
      return '<tr><td>' + esc(v.labels.customer) + '</td><td class="n">' + v.value.toLocaleString('en') + '</td></tr>';
    }).join('') + '</table>' : '<div class="empty">no calls in the last hour</div>';
    // Backends.
    var names = Object.keys(d.backends).sort();
    $('backend-list').innerHTML = names.length ? '<table>' + names.map(function (n) {
      var b = d.backends[n];
      return '<tr data-backend="' + esc(n) + '"><td>' + esc(n) + '</td><td class="' + (b.ok ? 'ok' : b.required ? 'bad' : 'warn') + '">' + (b.ok ? 'up' : 'DOWN: ' + esc(b.error)) + '</td></tr>';
    }).join('') + '</table>' : '<div class="empty">no backends</div>';
  }
  async function tick() {
    try {
      var r = await fetch('/ops/data', { cache: 'no-store' });
      if (!r.ok) throw new Error('/ops/data answered ' + r.status);
      var d = await r.json();
      render(d, prev);
      prev = d;
      $('error').style.display = 'none';
      document.body.dataset.ticks = String(Number(document.body.dataset.ticks || 0) + 1);
    } catch (e) {
      $('error').textContent = 'cannot read metrics: ' + e.message;
      $('error').style.display = 'block';
    }
    setTimeout(tick, refresh * 1000);
  }
  tick();
})();
</script>
</body>
</html>
`;
