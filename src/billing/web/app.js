// The customers' view: prices of their plan, calls per day per API (uPlot), cost to date with
// the invoice preview. Plain script, no build step. The customer token comes from the URL
// fragment (#token=...; never sent to the server as part of a URL) or from the form.
'use strict';

(function () {
  const $ = (s) => document.querySelector(s);
  const params = new URLSearchParams(location.hash.slice(1));
  let token = params.get('token') || '';

  function text(el, s) {
    el.textContent = s;
    return el;
  }
  function row(cells, numeric) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = text(document.createElement('td'), c);
      if (numeric && numeric.includes(i)) td.className = 'num';
      tr.appendChild(td);
    });
    return tr;
  }
  async function api(path) {
    const res = await fetch(path, { headers: { authorization: 'Bearer ' + token } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((body && body.error) || res.status + ' ' + res.statusText);
    return body;
  }
  /** The month containing now in the customer's zone, "YYYY-MM". */
  function currentPeriod(tz) {
    const p = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit' }).formatToParts(new Date());
    return p.find((x) => x.type === 'year').value + '-' + p.find((x) => x.type === 'month').value;
  }
  function nextMonth(period) {
    let [y, m] = period.split('-').map(Number);
    m += 1;
    if (m > 12) (m = 1), (y += 1);
    return y + '-' + String(m).padStart(2, '0');
  }
  function describe(charge, currency) {
    const f = charge.freeUnits ? Number(charge.freeUnits).toLocaleString('en-US') : '';
    switch (charge.model) {
      case 'per_unit':
        return [charge.unitPrice + ' ' + currency + ' per call', f];
      case 'package':
        return [charge.packagePrice + ' ' + currency + ' per ' + charge.packageSize + ' calls', f];
      default: {
        let lo = 0;
        const parts = charge.tiers.map((t) => {
          const range = t.upTo === null ? (lo + 1).toLocaleString('en-US') + '+' : (lo + 1).toLocaleString('en-US') + '–' + Number(t.upTo).toLocaleString('en-US');
          lo = t.upTo;
          return range + ': ' + t.unitPrice + (t.flatFee ? ' + ' + t.flatFee + ' flat' : '');
        });
        return [(charge.model === 'volume' ? 'volume tiers ' : 'graduated tiers ') + '(' + currency + ') ' + parts.join('; '), f];
      }
    }
  }

  function drawChart(usage, tz) {
    // x: every day of the period (seconds), one series per API; days without calls are 0.
    // Days step by 24 h from the period start; a point goes to the nearest day (absorbs DST hours).
    const from = Date.parse(usage.from) / 1000;
    const to = Date.parse(usage.to) / 1000;
    const days = [];
    for (let t = from; t < to - 3600; t += 86400) days.push(t);
    const apis = usage.byApi.map((a) => a.api);
    const data = [days, ...apis.map(() => days.map(() => 0))];
    for (const p of usage.series) {
      const i = Math.min(days.length - 1, Math.max(0, Math.round((Date.parse(p.start) / 1000 - from) / 86400)));
      data[1 + apis.indexOf(p.api)][i] += p.calls;
    }
    const totals = apis.map((_, i) => data[1 + i].reduce((s, v) => s + v, 0));
    const colors = ['#2f6fde', '#e0712c', '#2c9a4b', '#9b3fc2', '#c23f5a', '#3fa6b5', '#7a7f2e'];
    const el = $('#chart');
    el.textContent = '';
    if (!apis.length) {
      text(el, 'No calls yet this period.');
    } else {
      const opts = {
        width: Math.min(900, el.clientWidth || 900),
        height: 300,
        scales: { x: { time: true } },
        // Axis dates in the customer's billing zone, not the browser's.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
        axes: [{}, { label: 'calls' }],
        series: [{}, ...apis.map((a, i) => ({ label: a, stroke: colors[i % colors.length], width: 2, points: { show: true } }))],
      };
      window.meterChart = { apis, totals, days: days.length, plot: new uPlot(opts, data, el) };
    }
    if (!window.meterChart) window.meterChart = { apis, totals, days: 0 };
    const tb = $('#totals tbody');
    tb.textContent = '';
    apis.forEach((a, i) => {
      const tr = row([a, totals[i].toLocaleString('en-US')], [1]);
      tr.dataset.api = a;
      tr.dataset.calls = String(totals[i]);
      tb.appendChild(tr);
    });
  }

  async function show() {
    $('#login').hidden = true;
    $('#error').hidden = true;
    const me = await api('/v1/me');
    text($('#who'), me.name + ' (' + me.id + ') — billing time zone ' + me.timeZone);
    const period = params.get('period') || currentPeriod(me.timeZone);
    const [prices, usage, invoice] = await Promise.all([
      api('/v1/me/prices'),
      api('/v1/me/usage?granularity=day&from=' + period + '-01&to=' + nextMonth(period) + '-01'),
      api('/v1/me/invoices/' + period),
    ]);
    var limits = prices.rateLimit ? ', up to ' + prices.rateLimit.ratePerSec + ' calls/s' : '';
    if (prices.quota) limits += ', ' + prices.quota.limit.toLocaleString('en-US') + ' calls per ' + prices.quota.period;
    text($('#plan'), prices.planName + ' plan, ' + prices.currency + limits);
    const pb = $('#prices tbody');
    pb.textContent = '';
    for (const p of prices.prices) {
      const [desc, free] = describe(p.charge, p.currency);
      const tr = row([p.api, desc, free, p.effectiveFrom ? new Date(p.effectiveFrom).toISOString().slice(0, 10) : '—'], [2]);
      tr.dataset.api = p.api;
      pb.appendChild(tr);
    }
    text($('#period'), period + ' (' + me.timeZone + ')');
    drawChart(usage, me.timeZone);
    const ib = $('#invoice tbody');
    ib.textContent = '';
    for (const l of invoice.lines) {
      const tr = row([l.api, l.calls.toLocaleString('en-US'), l.unitPrice === null ? (l.model || '').replace('_', ' ') : l.unitPrice, l.amount], [1, 2, 3]);
      tr.dataset.api = l.api;
      tr.dataset.amount = l.amount;
      ib.appendChild(tr);
    }
    text($('#total'), invoice.total + ' ' + invoice.currency);
    const status = text($('#status'), invoice.status === 'final' ? 'final invoice' : 'invoice preview (draft)');
    status.className = 'badge ' + invoice.status;
    text(
      $('#invoice-note'),
      'Invoice ' + invoice.id + '. ' +
        (invoice.status === 'final' ? 'Final since ' + invoice.finalizedAt + '.' : 'Becomes final at ' + invoice.finalizesAt + '.') +
        (invoice.dataCompleteUntil ? ' Data complete until ' + invoice.dataCompleteUntil + '.' : ''),
    );
    $('#main').hidden = false;
    document.body.dataset.ready = 'true';
  }

  function fail(e) {
    text($('#error'), String(e && e.message ? e.message : e));
    $('#error').hidden = false;
    $('#login').hidden = false;
    document.body.dataset.ready = 'error';
  }

  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    show().catch(fail);
  });
  if (token) show().catch(fail);
  else $('#login').hidden = false;
})();
