// Renders a route-eval result (embedded in the page as #results): the table of policies, quality against decode
// speed, and the routing statistics per MoE layer. When done, <body data-rendered="N"> holds the number of charts
// drawn; errors are listed in #errors and counted in data-errors, as report.js does for experiments.
(function () {
  'use strict';
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); showErrors(); });
  var charts = [];

  function showErrors() {
    var pre = document.getElementById('errors');
    pre.textContent = errors.join('\n');
    document.body.dataset.errors = String(errors.length);
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { e.appendChild(c); } });
    return e;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) { return '–'; }
    return Number(v).toFixed(digits === undefined ? 3 : digits);
  }

  function chart(container, option, tall) {
    var div = el('div', {'class': 'chart' + (tall ? ' tall' : '')});
    container.appendChild(div);
    var c = echarts.init(div, null, {renderer: 'svg'});
    option.animation = false;
    c.setOption(option);
    charts.push(c);
    return c;
  }

  function card(parent, title, note) {
    var c = el('div', {'class': 'card'}, [el('h3', {text: title})]);
    if (note) { c.appendChild(el('div', {'class': 'note', text: note})); }
    parent.appendChild(c);
    return c;
  }

  function section(title, note) {
    var main = document.querySelector('main');
    main.appendChild(el('h2', {text: title}));
    if (note) { main.appendChild(el('p', {'class': 'note', text: note})); }
    var grid = el('div', {'class': 'grid'});
    main.appendChild(grid);
    return grid;
  }

  var R = JSON.parse(document.getElementById('results').textContent);
  var P = R.policies;
  var names = P.map(function (p) { return p.policy; });
  var COLOURS = ['#1d232b', '#2f6fb3', '#c0392b', '#27ae60', '#8e44ad', '#d68910', '#16a085', '#7f8c8d', '#e84393',
    '#6c5ce7', '#00b894', '#b33939', '#0984e3', '#fdcb6e'];

  function header() {
    var main = document.querySelector('main');
    var m = R.machine;
    main.appendChild(el('h1', {text: 'route-eval: ' + R.model}));
    main.appendChild(el('p', {'class': 'claim', text: 'What each routing policy costs this model on ' + R.data + ': '
      + R.tokens + ' scored tokens in ' + R.windows + ' windows of ' + R.context + '; decoding ' + R.decode_tokens
      + ' tokens after a ' + R.decode_prompt + '-token prompt, ' + R.runs + ' timed runs per policy, the policies'
      + ' taking turns. Trained with ' + R.trained_k + ' of ' + R.experts + ' experts per token.'}));
    main.appendChild(el('p', {'class': 'meta', text: m.cpu + ', ' + m.threads + ' threads, ' + m.vector_bits
      + '-bit vectors, Java ' + m.java + '; load average ' + fmt(m.load_average_before, 2) + ' before, '
      + fmt(m.load_average_after, 2) + ' after; started ' + m.started_utc}));
  }

  function table() {
    var grid = section('Policies', 'change: perplexity against the trained routing; mean KL: nats per position from'
      + ' the trained routing\'s next-token distribution; experts: per token and MoE layer; speedup: median decode'
      + ' tokens/s against the trained routing\'s; bytes: the speedup if decoding were bound by the weight bytes read.');
    var t = el('table');
    var head = ['policy', 'perplexity', 'change', 'mean KL', 'max KL', 'experts', 'active params', 'MB/token',
      'decode tok/s (median)', 'min-max', 'speedup', 'bytes'];
    t.appendChild(el('tr', {}, head.map(function (s, i) { return el('th', {'class': i === 0 ? 'name' : '', text: s}); })));
    P.forEach(function (p) {
      var d = p.decode_tokens_per_s;
      var cells = [p.policy, fmt(p.perplexity, 3), (p.perplexity_change >= 0 ? '+' : '') + fmt(100 * p.perplexity_change, 2) + '%',
        fmt(p.mean_kl, 4), fmt(p.max_kl, 3), fmt(p.experts_per_token, 2), fmt(p.active_parameters / 1e6, 3) + 'M',
        fmt(p.bytes_per_token / 1e6, 2), fmt(d.median, 1), fmt(d.min, 1) + '-' + fmt(d.max, 1),
        fmt(p.speedup, 2) + 'x', fmt(p.bytes_speedup, 2) + 'x'];
      t.appendChild(el('tr', {}, cells.map(function (s, i) { return el('td', {'class': i === 0 ? 'name' : '', text: s}); })));
    });
    var c = card(grid, 'Every policy, measured in one run');
    c.appendChild(t);
  }

  function tradeOff() {
    var grid = section('Quality against speed', 'Each point is a policy: decode tokens/s (median of the timed runs,'
      + ' whiskers from min to max) against its perplexity and its mean KL divergence from the trained routing.');
    function scatter(title, yName, value) {
      var series = P.map(function (p, i) {
        var d = p.decode_tokens_per_s;
        return {name: p.policy, type: 'scatter', symbolSize: 12, color: COLOURS[i % COLOURS.length],
          data: [[d.median, value(p), d.min, d.max]]};
      });
      var whiskers = {type: 'custom', name: 'min-max', silent: true,
        renderItem: function (params, api) {
          var a = api.coord([api.value(0), api.value(1)]), b = api.coord([api.value(2), api.value(1)]);
          var c = api.coord([api.value(3), api.value(1)]);
          return {type: 'line', shape: {x1: b[0], y1: a[1], x2: c[0], y2: a[1]}, style: {stroke: '#9aa3ad'}};
        },
        data: P.map(function (p) { var d = p.decode_tokens_per_s; return [d.median, value(p), d.min, d.max]; })};
      chart(card(grid, title), {
        tooltip: {trigger: 'item', formatter: function (x) { return x.seriesName + '<br>' + fmt(x.value[0], 1) + ' tokens/s, ' + yName + ' ' + fmt(x.value[1], 4); }},
        legend: {type: 'scroll', bottom: 0},
        grid: {left: 70, right: 20, top: 20, bottom: 70},
        xAxis: {type: 'value', name: 'decode tokens/s', nameLocation: 'middle', nameGap: 28, scale: true},
        yAxis: {type: 'value', name: yName, scale: true},
        series: series.concat([whiskers])
      }, true);
    }
    scatter('Perplexity against decode speed', 'perplexity', function (p) { return p.perplexity; });
    scatter('KL divergence from the trained routing against decode speed', 'mean KL (nats)', function (p) { return p.mean_kl; });
    chart(card(grid, 'Measured speedup and the bytes-bound speedup', 'If decoding were bound by the weight bytes a'
      + ' token reads, the speedup would equal the bytes ratio; the gap is the work that does not shrink with the'
      + ' experts (attention, norms, the LM head, routing, dispatch, thread hand-offs).'), {
      tooltip: {trigger: 'axis'},
      legend: {bottom: 0},
      grid: {left: 60, right: 20, top: 20, bottom: 90},
      xAxis: {type: 'category', data: names, axisLabel: {rotate: 30}},
      yAxis: {type: 'value', name: 'x trained'},
      series: [
        {name: 'measured (median)', type: 'bar', data: P.map(function (p) { return p.speedup; })},
        {name: 'bytes-bound', type: 'bar', data: P.map(function (p) { return p.bytes_speedup; })}
      ]
    }, true);
  }

  function layers() {
    var grid = section('Routing per MoE layer', 'Load: tokens each expert took under the policy. Changed: the share'
      + ' of tokens whose experts differ from the trained top k of the same router scores. Entropy: of the router\'s'
      + ' probabilities (the same scores, so it moves only through the hidden states the policy changed upstream).');
    var layerNames = R.moe_layers.map(function (l) { return 'layer ' + l; });
    function perLayer(title, key, yName) {
      chart(card(grid, title), {
        tooltip: {trigger: 'axis'},
        legend: {type: 'scroll', bottom: 0},
        grid: {left: 60, right: 20, top: 20, bottom: 60},
        xAxis: {type: 'category', data: layerNames},
        yAxis: {type: 'value', name: yName},
        series: P.map(function (p, i) {
          return {name: p.policy, type: 'bar', color: COLOURS[i % COLOURS.length],
            data: p.layers.map(function (l) { return /changed|dropped|added/.test(key) ? 100 * l[key] : l[key]; })};
        })
      });
    }
    perLayer('Tokens whose experts changed', 'changed', '% of tokens');
    perLayer('Tokens that lost one of their trained top k', 'dropped_trained', '% of tokens');
    perLayer('Tokens that took an expert outside their trained top k', 'added_untrained', '% of tokens');
    perLayer('Experts per token', 'experts_per_token', 'experts');
    perLayer('Router entropy', 'entropy', 'nats');
    perLayer('Load imbalance (coefficient of variation)', 'load_cv', 'CV');
    var heat = card(grid, 'Load per expert', 'Share of the layer\'s assignments each expert took, per policy.');
    var data = [], max = 0;
    P.forEach(function (p, pi) {
      p.layers.forEach(function (l, li) {
        var total = l.load.reduce(function (a, b) { return a + b; }, 0) || 1;
        l.load.forEach(function (x, e) {
          var share = x / total;
          max = Math.max(max, share);
          data.push([e, pi * p.layers.length + li, share]);
        });
      });
    });
    var rows = [];
    P.forEach(function (p) { p.layers.forEach(function (l) { rows.push(p.policy + ' · L' + l.layer); }); });
    var experts = [];
    for (var e = 0; e < R.experts; e++) { experts.push(String(e)); }
    var div = chart(heat, {
      tooltip: {formatter: function (x) { return rows[x.value[1]] + ', expert ' + x.value[0] + ': ' + fmt(100 * x.value[2], 1) + '%'; }},
      grid: {left: 190, right: 20, top: 10, bottom: 60},
      xAxis: {type: 'category', data: experts, name: 'expert', nameLocation: 'middle', nameGap: 24},
      yAxis: {type: 'category', data: rows, inverse: true, axisLabel: {fontSize: 10}},
      visualMap: {min: 0, max: max || 1, calculable: true, orient: 'horizontal', left: 'center', bottom: 0, itemHeight: 120},
      series: [{type: 'heatmap', data: data}]
    }, true);
    div.getDom().style.height = Math.max(420, 14 * rows.length + 80) + 'px';
    div.resize();
  }

  try {
    header();
    table();
    tradeOff();
    layers();
  } catch (e) {
    errors.push(String(e && e.stack || e));
  }
  window.addEventListener('resize', function () { charts.forEach(function (c) { c.resize(); }); });
  showErrors();
  document.body.dataset.rendered = String(charts.length);
})();
