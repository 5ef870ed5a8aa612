// The customers' view: a billing month picker, calls per day per API (uPlot) with totals, the
// month's invoice (draft or final), the invoice history, and the plan's prices. Plain script, no
// build step. The customer token comes from the URL fragment (#token=...; never sent to the
// server as part of a URL) or from the form. Instants are shown in the viewer's local time; months
// are calendar months of the customer's billing time zone (said next to them).
'use strict';

(function () {
  const $ = (s) => document.querySelector(s);
  const params = new URLSearchParams(location.hash.slice(1));
  let token = params.get('token') || '';
  let me = null;
  let prices = null;
  let historyCursor = null;
  let current = null;

  function text(el, s) {
    el.textContent = s;
    return el;
  }
  function row(cells, numeric) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      if (c instanceof Node) td.appendChild(c);
      else td.textContent = c;
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
  // (dateStyle cannot be combined with timeZoneName: the fields one by one.)
  const localTime = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
  /** An instant in the viewer's local time, the exact ISO text in its datetime and title. */
  function timeEl(iso) {
    const t = document.createElement('time');
    t.dateTime = iso;
    t.title = iso;
    t.textContent = localTime.format(new Date(iso));
    return t;
  }
  function monthName(period) {
    const [y, m] = period.split('-').map(Number);
    return new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, 1)));
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
  /** A name no price covers, with no calls (e.g. the gateway's "unmatched" 404s): not a row. */
  function shown(apiName, calls) {
    return calls > 0 || prices.prices.some((p) => p.api === apiName);
  }

  function drawChart(usage, tz) {
    // x: every day of the period (seconds), one series per API; days without calls are 0.
    // Days step by 24 h from the period start; a point goes to the nearest day (absorbs DST hours).
    const from = Date.parse(usage.from) / 1000;
    const to = Date.parse(usage.to) / 1000;
    const days = [];
    for (let t = from; t < to - 3600; t += 86400) days.push(t);
    const apis = usage.byApi.filter((a) => shown(a.api, a.calls)).map((a) => a.api);
    const data = [days, ...apis.map(() => days.map(() => 0))];
    for (const p of usage.series) {
      const k = apis.indexOf(p.api);
      if (k < 0) continue;
      const i = Math.min(days.length - 1, Math.max(0, Math.round((Date.parse(p.start) / 1000 - from) / 86400)));
      data[1 + k][i] += p.calls;
    }
    const totals = apis.map((_, i) => data[1 + i].reduce((s, v) => s + v, 0));
    const colors = ['#2f6fde', '#e0712c', '#2c9a4b', '#9b3fc2', '#c23f5a', '#3fa6b5', '#7a7f2e'];
    const el = $('#chart');
    el.textContent = '';
    if (window.meterChart && window.meterChart.plot) window.meterChart.plot.destroy();
    window.meterChart = { apis, totals, days: 0 };
    if (!apis.length) {
      text(el, 'No calls in this month.');
    } else {
      // Drawn once the section is visible, at the width it has (a phone's, not 900 px).
      const narrow = el.clientWidth < 600;
      const opts = {
        width: el.clientWidth,
        height: narrow ? 220 : 300,
        scales: { x: { time: true } },
        // Axis dates in the customer's billing zone, the zone of the month shown.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
        axes: [{ space: narrow ? 60 : 50 }, { label: narrow ? '' : 'calls', size: narrow ? 45 : 60 }],
        legend: { live: !narrow },
        series: [{}, ...apis.map((a, i) => ({ label: a, stroke: colors[i % colors.length], width: 2, points: { show: true } }))],
      };
      window.meterChart = { apis, totals, days: days.length, plot: new uPlot(opts, data, el) };
    }
    const tb = $('#totals tbody');
    tb.textContent = '';
    apis.forEach((a, i) => {
      const tr = row([a, totals[i].toLocaleString('en-US')], [1]);
      tr.dataset.api = a;
      tr.dataset.calls = String(totals[i]);
      tb.appendChild(tr);
    });
  }
  window.addEventListener('resize', () => {
    const c = window.meterChart;
    if (c && c.plot) c.plot.setSize({ width: $('#chart').clientWidth, height: c.plot.height });
  });

  function historyRows(invoices) {
    const hb = $('#history tbody');
    const picker = $('#period-picker');
    for (const inv of invoices) {
      const link = document.createElement('a');
      link.href = '#period=' + inv.period;
      link.textContent = monthName(inv.period);
      link.addEventListener('click', (ev) => {
        ev.preventDefault();
        pick(inv.period);
      });
      const when = inv.status === 'final' ? timeEl(inv.finalizedAt) : document.createElement('span');
      if (inv.status !== 'final') {
        when.className = 'muted';
        when.append('at ', timeEl(inv.finalizesAt));
      }
      const tr = row([link, inv.status, inv.total + ' ' + inv.currency, when], [2]);
      tr.dataset.period = inv.period;
      tr.dataset.status = inv.status;
      hb.appendChild(tr);
      if (![...picker.options].some((o) => o.value === inv.period)) picker.appendChild(new Option(monthName(inv.period) + (inv.status === 'final' ? '' : ' (draft)'), inv.period));
    }
  }
  async function loadHistory() {
    const page = await api('/v1/me/invoices?limit=12' + (historyCursor ? '&cursor=' + encodeURIComponent(historyCursor) : ''));
    historyRows(page.invoices);
    historyCursor = page.nextCursor;
    $('#older').hidden = !historyCursor;
  }

  async function showPeriod(period) {
    current = period;
    const picker = $('#period-picker');
    if (![...picker.options].some((o) => o.value === period)) picker.appendChild(new Option(monthName(period), period));
    picker.value = period;
    const [usage, invoice] = await Promise.all([
      api('/v1/me/usage?granularity=day&from=' + period + '-01&to=' + nextMonth(period) + '-01'),
      api('/v1/me/invoices/' + period),
    ]);
    if (current !== period) return; // another month was picked meanwhile
    text($('#period'), monthName(period) + ' (' + me.timeZone + ')');
    drawChart(usage, me.timeZone);
    const ib = $('#invoice tbody');
    ib.textContent = '';
    for (const l of invoice.lines) {
      if (!shown(l.api, l.calls)) continue;
      const tr = row([l.api, l.calls.toLocaleString('en-US'), l.unitPrice === null ? (l.model || '').replace('_', ' ') : l.unitPrice, l.amount], [1, 2, 3]);
      tr.dataset.api = l.api;
      tr.dataset.amount = l.amount;
      ib.appendChild(tr);
    }
    text($('#total'), invoice.total + ' ' + invoice.currency);
    const status = text($('#status'), invoice.status === 'final' ? 'final invoice' : 'preview (draft)');
    status.className = 'badge ' + invoice.status;
    const note = $('#invoice-note');
    note.textContent = 'Invoice ' + invoice.id + '. ';
    if (invoice.status === 'final') note.append('Final since ', timeEl(invoice.finalizedAt), '.');
    else note.append('Becomes final at ', timeEl(invoice.finalizesAt), '.');
    if (invoice.dataCompleteUntil) note.append(' Usage counted until ', timeEl(invoice.dataCompleteUntil), '.');
  }

  function pick(period) {
    params.set('period', period);
    // The fragment keeps the token; replaceState: no reload, nothing sent to the server.
    history.replaceState(null, '', '#' + params.toString());
    document.body.dataset.ready = 'loading';
    showPeriod(period).then(() => (document.body.dataset.ready = 'true'), fail);
  }

  async function show() {
    $('#login').hidden = true;
    $('#error').hidden = true;
    me = await api('/v1/me');
    text($('#who'), me.name + ' (' + me.id + ') — billing months in ' + me.timeZone);
    prices = await api('/v1/me/prices');
    var limits = prices.rateLimit ? ', up to ' + prices.rateLimit.ratePerSec + ' calls/s' : '';
    if (prices.quota) limits += ', ' + prices.quota.limit.toLocaleString('en-US') + ' calls per ' + prices.quota.period;
    text($('#plan'), prices.planName + ' plan, ' + prices.currency + limits);
    const pb = $('#prices tbody');
    pb.textContent = '';
    for (const p of prices.prices) {
      const [desc, free] = describe(p.charge, p.currency);
      const tr = row([p.api, desc, free, p.effectiveFrom ? timeEl(p.effectiveFrom) : '—'], [2]);
      tr.dataset.api = p.api;
      pb.appendChild(tr);
    }
    $('#history tbody').textContent = '';
    $('#period-picker').textContent = '';
    historyCursor = null;
    await loadHistory();
    // Visible before the chart is drawn: it takes the width the page gives it.
    $('#main').hidden = false;
    await showPeriod(params.get('period') || currentPeriod(me.timeZone));
    document.body.dataset.ready = 'true';
  }

  function fail(e) {
    text($('#error'), String(e && e.message ? e.message : e));
    $('#error').hidden = false;
    if (!me) $('#login').hidden = false;
    document.body.dataset.ready = 'error';
  }

  $('#period-picker').addEventListener('change', (ev) => pick(ev.target.value));
  $('#older').addEventListener('click', () => loadHistory().catch(fail));
  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    show().catch(fail);
  });
  if (token) show().catch(fail);
  else $('#login').hidden = false;
})();
