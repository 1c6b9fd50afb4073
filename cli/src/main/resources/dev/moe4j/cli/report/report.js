// Renders an experiment's results.json (embedded in the page as #results) into tables and ECharts charts.
// When done, <body data-rendered="N"> holds the number of charts drawn; errors are listed in #errors and counted in
// data-errors, so that a headless browser can tell a page that rendered from one that did not.
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
      if (k === 'text') { e.textContent = attrs[k]; } else if (k === 'html') { e.innerHTML = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { e.appendChild(c); } });
    return e;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) { return '–'; }
    if (Math.abs(v) >= 1000) { return Math.round(v).toLocaleString('en-US'); }
    return Number(v).toFixed(digits === undefined ? 3 : digits);
  }

  function palette(n) {
    var out = [];
    for (var i = 0; i < n; i++) {
      var h = Math.round((i * 360 / n + (i % 2) * 180 / n) % 360);
      out.push('hsl(' + h + ', ' + (i % 3 === 0 ? 70 : 60) + '%, ' + (i % 2 ? 72 : 80) + '%)');
    }
    return out;
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

  function select(labelText, options, onChange) {
    var s = el('select');
    options.forEach(function (o, i) { s.appendChild(el('option', {value: String(i), text: o})); });
    s.addEventListener('change', function () { onChange(Number(s.value)); });
    return el('label', {}, [document.createTextNode(labelText + ' '), s]);
  }

  var R = JSON.parse(document.getElementById('results').textContent);
  var variants = R.variants;
  var labels = variants.map(function (v) { return v.label; });
  var moeVariants = variants.filter(function (v) { return v.runs.length && v.runs[0].load_over_training; });
  var analysed = variants.filter(function (v) { return v.runs.some(function (r) { return r.analysis && r.analysis.experts; }); });

  function header() {
    var main = document.querySelector('main');
    var h = el('h1', {text: R.title});
    if (R.quick) { h.appendChild(el('span', {'class': 'badge', text: 'quick: pipeline check, not a measurement'})); }
    main.appendChild(h);
    main.appendChild(el('div', {'class': 'meta', text: 'moe4j experiment ' + R.experiment + (R.quick ? ' --quick' : '') + ' · ' +
      R.seeds + ' seeds per variant · ' + R.created + ' · ' + R.machine.processors + ' processors, load average ' +
      fmt(R.machine.load_average_start, 2) + ' → ' + fmt(R.machine.load_average_end, 2) + ' (a shared machine: compare by tokens first) · Java ' + R.machine.java}));
    main.appendChild(el('p', {'class': 'claim', html: '<b>Claim tested.</b> '}, [document.createTextNode(R.claim)]));
    var settings = Object.keys(R.base).map(function (k) { return k + ' ' + R.base[k]; }).join(' · ');
    main.appendChild(el('details', {}, [el('summary', {text: 'Base options (every variant starts here)'}),
      el('div', {'class': 'note', text: settings + '. ' + R.window + '.'})]));
  }

  function findings() {
    if (!R.findings || !R.findings.moe_steps_to_reach) { return; }
    var grid = section('Steps the MoE needs to reach the dense models\' final loss');
    var c = card(grid, 'Interpolated between evaluations on the mean validation curves');
    var t = el('table');
    t.appendChild(el('tr', {}, ['dense model', 'its final val loss', 'MoE steps to reach it', 'of total', 'per seed', 'MoE seconds', 'dense seconds'].map(function (s) { return el('th', {text: s}); })));
    R.findings.moe_steps_to_reach.forEach(function (f) {
      t.appendChild(el('tr', {}, [f.target, fmt(f.target_final_val_loss), f.moe_steps === null ? 'not reached' : fmt(f.moe_steps, 0),
        f.moe_steps === null ? '–' : Math.round(100 * f.moe_steps / f.total_steps) + ' %',
        f.per_seed_moe_steps.map(function (x) { return x === null ? 'never' : fmt(x, 0); }).join(', '),
        fmt(f.moe_seconds, 0), fmt(f.target_seconds, 0)].map(function (s, i) { return el('td', {'class': i === 0 ? 'name' : '', text: String(s)}); })));
    });
    c.appendChild(t);
  }

  var COLUMNS = [
    ['final_val_loss', 'val loss', 4], ['causal_val_loss', 'causal val loss', 4],
    ['batch_val_loss_same_tokens', 'same windows, routed as in training', 4], ['causal_gap', 'causal − batch', 4],
    ['threshold_causal_val_loss', 'causal, threshold decoding', 4], ['predictor_top_k_causal_val_loss', 'causal, predictor\'s top-k', 4], ['predictor_accuracy', 'predictor accuracy', 3],
    ['predictor_precision', 'predictor precision', 3], ['predictor_recall', 'predictor recall', 3],
    ['final_train_loss', 'train loss', 4],
    ['load_cv', 'load CV', 3], ['max_violation', 'max violation', 3], ['dead_experts', 'dead experts', 1],
    ['dropped_pct', 'dropped %', 2], ['loss_spikes', 'loss spikes', 1], ['router_z', 'router z', 2],
    ['tokens_per_s', 'tokens/s', 0], ['wall_s', 'wall s', 0]];

  function summaryTable() {
    var grid = section('Results per variant', 'Mean ± sample standard deviation over seeds; the small line lists each seed\'s value. ' +
      '"causal val loss": the loss when tokens are fed one at a time through the KV cache (no router sees a later token), on 8 validation windows; ' +
      '"same windows, routed as in training": those windows in one pass, expert choice taking each expert\'s top-C of them; ' +
      'predictor: an expert-choice predictor\'s (token, expert) choices against the batch\'s selections over the last fifth of training, mean over layers; ' +
      'FFN MACs: feed-forward multiply-adds per token, what "equal compute" holds equal.');
    var c = card(grid, R.experiment);
    c.style.gridColumn = '1 / -1';
    c.style.overflowX = 'auto';
    var t = el('table');
    var columns = COLUMNS.filter(function (col) { return variants.some(function (v) { return v.summary[col[0]] && v.summary[col[0]].n > 0; }); });
    var head = ['variant', 'active params', 'total params', 'FFN MACs/token'].concat(columns.map(function (c) { return c[1]; }), ['diverged']);
    t.appendChild(el('tr', {}, head.map(function (s, i) { return el('th', {'class': i === 0 ? 'name' : '', text: s}); })));
    variants.forEach(function (v) {
      var cells = [el('td', {'class': 'name', title: v.note, text: v.label})];
      [v.compute.active_params, v.compute.total_params, v.compute.ffn_macs_per_token].forEach(function (x) {
        cells.push(el('td', {text: (x / 1e3 >= 1000 ? fmt(x / 1e6, 2) + 'M' : fmt(x / 1e3, 1) + 'k')}));
      });
      columns.forEach(function (col) {
        var s = v.summary[col[0]];
        var td = el('td');
        if (!s || s.n === 0) { td.textContent = '–'; } else {
          td.appendChild(document.createTextNode(fmt(s.mean, col[2]) + (s.n > 1 ? ' ± ' + fmt(s.std, col[2]) : '')));
          td.appendChild(el('span', {'class': 'seeds', text: s.values.map(function (x) { return fmt(x, col[2]); }).join(' / ')}));
        }
        cells.push(td);
      });
      cells.push(el('td', {text: v.summary.diverged + ' of ' + v.summary.runs}));
      t.appendChild(el('tr', {}, cells));
    });
    c.appendChild(t);
    var notes = el('details', {}, [el('summary', {text: 'What each variant is'})]);
    variants.forEach(function (v) { notes.appendChild(el('div', {'class': 'note', html: '<b></b> '}, [])); notes.lastChild.firstChild.textContent = v.label + ': '; notes.lastChild.appendChild(document.createTextNode(v.note)); });
    c.appendChild(notes);
  }

  // Expert choice's causal decodings per MoE layer: how their (token, expert) choices matched the experts' top-C
  // selections on the training batches (a predictor's, as trained) and on the validation windows.
  function causalChoices() {
    var chosen = variants.filter(function (v) { return v.runs.length && v.runs[0].analysis && v.runs[0].analysis.causal && v.runs[0].analysis.causal.agreement; });
    if (!chosen.length) { return; }
    var grid = section('Expert choice: causal choices against the batch\'s top-C, per layer',
      'Accuracy, precision and recall of each causal decoding\'s (token, expert) pairs against those the experts\' top-C selected: on the training batches over the last fifth of training (the predictor, as trained) and on the 8 validation windows of the causal loss. Mean over seeds; the small line lists each seed\'s value.');
    chosen.forEach(function (v) {
      var c = card(grid, v.label);
      c.style.gridColumn = '1 / -1';
      c.style.overflowX = 'auto';
      var t = el('table');
      var measures = ['accuracy', 'precision', 'recall'];
      var head = ['layer', 'decoding'].concat(measures.map(function (m) { return 'training, ' + m; }), measures.map(function (m) { return 'validation, ' + m; }));
      t.appendChild(el('tr', {}, head.map(function (s, i) { return el('th', {'class': i < 2 ? 'name' : '', text: s}); })));
      var causal = v.runs[0].analysis.causal, own = causal.expert_choice_decode;
      var decodings = [[own, 'agreement']].concat(own === 'threshold' ? [] : [['threshold', 'threshold_agreement'],
        ['predictor, top-' + causal.predictor_top_k, 'predictor_top_k_agreement']]);
      function cell(values) {
        var td = el('td');
        var known = values.filter(function (x) { return x !== null && x !== undefined; });
        if (!known.length) { td.textContent = '–'; return td; }
        td.appendChild(document.createTextNode(fmt(known.reduce(function (a, b) { return a + b; }, 0) / known.length, 3)));
        td.appendChild(el('span', {'class': 'seeds', text: values.map(function (x) { return fmt(x, 3); }).join(' / ')}));
        return td;
      }
      causal.agreement.forEach(function (layer, l) {
        decodings.forEach(function (d) {
          if (!causal[d[1]]) { return; }
          var cells = [el('td', {'class': 'name', text: String(layer.layer)}), el('td', {'class': 'name', text: d[0]})];
          measures.forEach(function (m) {
            cells.push(d[0] === 'predictor' ? cell(v.runs.map(function (r) { return r.routing.layers[l]['predictor_' + m]; })) : el('td', {text: '–'}));
          });
          measures.forEach(function (m) {
            cells.push(cell(v.runs.map(function (r) { return r.analysis.causal[d[1]][l][m]; })));
          });
          t.appendChild(el('tr', {}, cells));
        });
      });
      c.appendChild(t);
    });
  }

  function lineChart(container, title, xName, series, yName) {
    chart(container, {
      tooltip: {trigger: 'axis'},
      legend: {top: 0, left: 0, right: 0, itemWidth: 18, itemGap: 8, textStyle: {fontSize: 11}},
      grid: {top: 20 + 20 * Math.ceil(variants.length / 4), left: 60, right: 20, bottom: 45},
      xAxis: {type: 'value', name: xName, nameLocation: 'middle', nameGap: 28},
      yAxis: {type: 'value', name: yName || 'loss (nats)', nameLocation: 'middle', nameGap: 42, scale: true},
      series: series
    });
  }

  var SERIES_COLOURS = ['#5470c6', '#91cc75', '#fac858', '#ee6666', '#73c0de', '#3ba272', '#fc8452', '#9a60b4',
    '#ea7ccc', '#2f4554', '#c23531', '#6e7074'];

  function colourOf(i) { return SERIES_COLOURS[i % SERIES_COLOURS.length]; }

  function curves() {
    var grid = section('Loss curves', 'Validation loss at each evaluation (mean over seeds, thin lines: each seed); training loss averaged over bins of steps.');
    var byTokens = [], byTime = [], train = [];
    variants.forEach(function (v, i) {
      var mean = v.mean_eval_curve || [], colour = colourOf(i);
      byTokens.push({name: v.label, type: 'line', showSymbol: true, symbolSize: 4, color: colour, data: mean.map(function (p) { return [p[1], p[3]]; })});
      byTime.push({name: v.label, type: 'line', showSymbol: true, symbolSize: 4, color: colour, data: mean.map(function (p) { return [p[2], p[3]]; })});
      v.runs.forEach(function (r) {
        byTokens.push({name: v.label, type: 'line', showSymbol: false, color: colour, lineStyle: {width: 0.8, opacity: 0.5, type: 'dotted'},
          data: (r.curves.eval || []).map(function (p) { return [p[1], p[3]]; })});
        train.push({name: v.label, type: 'line', showSymbol: false, color: colour, lineStyle: {width: 1},
          data: (r.curves.train || []).map(function (p) { return [p[1], p[3]]; })});
      });
    });
    lineChart(card(grid, 'Validation loss against tokens'), '', 'tokens', byTokens);
    lineChart(card(grid, 'Validation loss against training time'), '', 'seconds (shared machine)', byTime);
    lineChart(card(grid, 'Training loss against tokens (every seed)'), '', 'tokens', train);
  }

  function barsWithSeeds(container, title, key, digits) {
    var means = variants.map(function (v) { var s = v.summary[key]; return s && s.n ? s.mean : null; });
    if (means.every(function (m) { return m === null; })) { return; }
    var points = [];
    variants.forEach(function (v, i) { (v.summary[key].values || []).forEach(function (x) { if (x !== null) { points.push([i, x]); } }); });
    chart(card(container, title), {
      tooltip: {trigger: 'item'},
      grid: {top: 20, left: 55, right: 10, bottom: 70},
      xAxis: {type: 'category', data: labels, axisLabel: {rotate: 25, fontSize: 11}},
      yAxis: {type: 'value', scale: key.indexOf('loss') >= 0},
      series: [{type: 'bar', name: 'mean', data: means, itemStyle: {color: '#8fb3d9'},
        label: {show: true, position: 'top', fontSize: 10, formatter: function (p) { return p.value === null ? '' : fmt(p.value, digits); }}},
        {type: 'scatter', name: 'seeds', data: points, symbolSize: 7, itemStyle: {color: '#1d232b'}}]
    });
  }

  function bars() {
    var grid = section('Measurements by variant', 'Bars: mean over seeds; dots: each seed.');
    grid.className = 'grid small';
    barsWithSeeds(grid, 'Final validation loss', 'final_val_loss', 3);
    barsWithSeeds(grid, 'Causal validation loss (token by token)', 'causal_val_loss', 3);
    barsWithSeeds(grid, 'Load CV (last 20 % of steps)', 'load_cv', 2);
    barsWithSeeds(grid, 'Dropped tokens (%)', 'dropped_pct', 1);
    barsWithSeeds(grid, 'Dead experts (all layers)', 'dead_experts', 0);
    barsWithSeeds(grid, 'Router z (mean logsumexp²)', 'router_z', 1);
    barsWithSeeds(grid, 'Loss spikes after warmup', 'loss_spikes', 0);
    barsWithSeeds(grid, 'Training tokens per second', 'tokens_per_s', 0);
  }

  function heatmapOption(xs, ys, data, max, xName, yName, extra) {
    var o = {
      tooltip: {position: 'top', formatter: function (p) { return yName + ' ' + ys[p.value[1]] + ', ' + xName + ' ' + xs[p.value[0]] + ': ' + fmt(p.value[2], 3); }},
      grid: {top: 20, left: 110, right: 70, bottom: 50},
      xAxis: {type: 'category', data: xs, name: xName, nameLocation: 'middle', nameGap: 30, splitArea: {show: true}},
      yAxis: {type: 'category', data: ys, name: yName, splitArea: {show: true}},
      visualMap: {min: 0, max: max, calculable: true, orient: 'vertical', right: 0, top: 'center', inRange: {color: ['#ffffff', '#fdd49e', '#ef6548', '#7f0000']}},
      series: [{type: 'heatmap', data: data, progressive: 0}]
    };
    Object.keys(extra || {}).forEach(function (k) { o[k] = extra[k]; });
    return o;
  }

  function loadHeatmaps() {
    if (!moeVariants.length) { return; }
    var grid = section('Load per expert over training', 'Share of the assignments each expert received in each bin of steps, ' +
      'times the number of experts (1 = its fair share; 0 = unused), for the first seed; then the final share per layer over the last 20 % of steps.');
    var c = card(grid, 'Load over training');
    c.style.gridColumn = '1 / -1';
    var state = {variant: 0, layer: 0};
    var controls = el('div', {'class': 'controls'});
    c.appendChild(controls);
    var layerBox = el('span');
    controls.appendChild(select('variant', moeVariants.map(function (v) { return v.label; }), function (i) { state.variant = i; state.layer = 0; draw(); }));
    controls.appendChild(layerBox);
    var c1 = chart(c, {}, true);
    var c2card = card(grid, 'Final load share per layer');
    c2card.style.gridColumn = '1 / -1';
    var c2 = chart(c2card, {});
    function draw() {
      var run = moeVariants[state.variant].runs[0];
      var h = run.load_over_training;
      layerBox.innerHTML = '';
      layerBox.appendChild(select('MoE layer', h.share.map(function (_, i) { return 'layer ' + (run.routing.layers[i] ? run.routing.layers[i].layer : i); }), function (i) { state.layer = i; draw(); }));
      layerBox.firstChild.lastChild.value = String(state.layer);
      var share = h.share[state.layer], experts = share[0].length, data = [], max = 0;
      share.forEach(function (row, b) { row.forEach(function (x, e) { var v = x * experts; max = Math.max(max, v); data.push([b, e, v]); }); });
      var ys = share[0].map(function (_, e) { return 'expert ' + e; });
      c1.setOption(heatmapOption(h.bin_end_steps.map(String), ys, data, Math.max(2, max), 'step', '', {}), true);
      var layers = run.routing.layers, d2 = [], m2 = 0;
      layers.forEach(function (l, li) { l.load_share.forEach(function (x, e) { var v = x * experts; m2 = Math.max(m2, v); d2.push([e, li, v]); }); });
      c2.setOption(heatmapOption(ys.map(function (_, e) { return String(e); }), layers.map(function (l) { return 'layer ' + l.layer; }), d2, Math.max(2, m2), 'expert', '', {}), true);
    }
    draw();
  }

  function sumRows(counts) { return counts.map(function (row) { return row.reduce(function (a, b) { return a + b; }, 0); }); }

  function specialisation() {
    if (!analysed.length) { return; }
    var multi = analysed.some(function (v) { return v.runs[0].analysis.domains.names.length > 1; });
    var grid = section(multi ? 'Specialisation: domains and token types' : 'Routing by token type',
      'First-choice expert of every analysed validation token, per MoE layer, for the first seed: each row is the share of that domain\'s (or token type\'s) tokens ' +
      'going to each expert, times the number of experts (1 = as often as uniform routing would send them). OLMoE plots the same per domain.');
    var c = card(grid, 'Where tokens go');
    c.style.gridColumn = '1 / -1';
    var state = {variant: 0, layer: 0};
    var controls = el('div', {'class': 'controls'});
    c.appendChild(controls);
    controls.appendChild(select('variant', analysed.map(function (v) { return v.label; }), function (i) { state.variant = i; draw(); }));
    var layers = analysed[0].runs[0].analysis.layers;
    controls.appendChild(select('MoE layer', layers.map(function (l) { return 'layer ' + l; }), function (i) { state.layer = i; draw(); }));
    var row = el('div', {'class': 'grid'});
    c.appendChild(row);
    var domainCard = multi ? card(row, 'Domain × expert') : null;
    var cd = multi ? chart(domainCard, {}) : null;
    var typeCard = card(row, 'Token type × expert');
    var ct = chart(typeCard, {});
    var tokenCard = card(row, 'Most frequent tokens × expert');
    var cf = chart(tokenCard, {}, true);
    var measures = card(row, 'How much the domain and the token type say about the expert (bits; share of the expert entropy)');
    var cm = chart(measures, {});
    function matrix(names, counts, target, experts) {
      var sums = sumRows(counts), data = [], max = 0, ys = [];
      counts.forEach(function (r, i) {
        if (!sums[i]) { return; }
        var y = ys.length;
        ys.push(names[i] + ' (' + sums[i] + ')');
        r.forEach(function (x, e) { var v = x / sums[i] * experts; max = Math.max(max, v); data.push([e, y, v]); });
      });
      var xs = counts[0].map(function (_, e) { return String(e); });
      target.setOption(heatmapOption(xs, ys, data, Math.max(2, Math.min(max, experts)), 'expert', '', {grid: {top: 20, left: 150, right: 70, bottom: 50}}), true);
    }
    function draw() {
      var a = analysed[state.variant].runs[0].analysis, l = Math.min(state.layer, a.layers.length - 1), e = a.experts;
      if (cd) { matrix(a.domains.names, a.domains.counts[l], cd, e); }
      matrix(a.token_types.names, a.token_types.counts[l], ct, e);
      matrix(a.frequent_tokens.names.map(function (s) { return JSON.stringify(s); }), a.frequent_tokens.counts[l], cf, e);
      var s = a.specialisation;
      var xs = s.map(function (x) { return 'layer ' + x.layer; });
      cm.setOption({
        tooltip: {trigger: 'axis'}, legend: {top: 0, left: 0, right: 0, itemWidth: 16, textStyle: {fontSize: 11}},
        grid: {top: 70, left: 50, right: 20, bottom: 30},
        xAxis: {type: 'category', data: xs}, yAxis: {type: 'value'},
        series: [
          {name: 'I(domain; expert)', type: 'bar', data: s.map(function (x) { return x.mi_domain_bits; })},
          {name: 'I(domain; expert | type)', type: 'bar', data: s.map(function (x) { return x.mi_domain_given_type_bits; })},
          {name: 'I(type; expert)', type: 'bar', data: s.map(function (x) { return x.mi_type_bits; })},
          {name: 'I(type; expert | domain)', type: 'bar', data: s.map(function (x) { return x.mi_type_given_domain_bits; })},
          {name: 'same expert as the next token', type: 'line', data: s.map(function (x) { return x.same_expert_next_token; })},
          {name: 'same expert by chance', type: 'line', lineStyle: {type: 'dashed'}, data: s.map(function (x) { return x.same_expert_chance; })}]
      }, true);
    }
    draw();
  }

  function passages() {
    if (!analysed.length) { return; }
    var grid = section('Tokens coloured by their first-choice expert', 'As in the Mixtral paper\'s figure: each token of a validation passage is ' +
      'coloured by the expert its router ranked first in the chosen layer (first seed). Hover a token for its experts in every layer. ' +
      'A character split over several byte-level tokens appears once, with the colour of the token that completes it.');
    var c = card(grid, 'Passage');
    c.style.gridColumn = '1 / -1';
    var state = {variant: 0, passage: 0, layer: 0};
    var controls = el('div', {'class': 'controls'});
    c.appendChild(controls);
    var passageBox = el('span');
    controls.appendChild(select('variant', analysed.map(function (v) { return v.label; }), function (i) { state.variant = i; state.passage = 0; draw(); }));
    controls.appendChild(passageBox);
    var layers = analysed[0].runs[0].analysis.layers;
    controls.appendChild(select('MoE layer', layers.map(function (l) { return 'layer ' + l; }), function (i) { state.layer = i; draw(); }));
    var legend = el('div', {'class': 'legend'});
    var text = el('div', {'class': 'passage', id: 'passage'});
    c.appendChild(legend);
    c.appendChild(text);
    function draw() {
      var a = analysed[state.variant].runs[0].analysis, colours = palette(a.experts);
      passageBox.innerHTML = '';
      if (a.passages.length > 1) {
        passageBox.appendChild(select('domain', a.passages.map(function (p) { return p.domain; }), function (i) { state.passage = i; draw(); }));
        passageBox.firstChild.lastChild.value = String(state.passage);
      }
      var p = a.passages[Math.min(state.passage, a.passages.length - 1)], l = Math.min(state.layer, p.experts.length - 1);
      legend.innerHTML = '';
      colours.forEach(function (col, e) { legend.appendChild(el('span', {style: 'background:' + col, text: 'expert ' + e})); });
      text.innerHTML = '';
      p.tokens.forEach(function (tok, t) {
        var e = p.experts[l][t];
        var span = el('span', {style: 'background:' + colours[e], 'data-expert': String(e),
          title: 'token ' + JSON.stringify(tok) + ': ' + p.experts.map(function (row, i) { return 'layer ' + a.layers[i] + ' → ' + row[t]; }).join(', ')});
        span.textContent = tok;
        text.appendChild(span);
      });
    }
    draw();
  }

  try {
    header();
    findings();
    summaryTable();
    causalChoices();
    curves();
    bars();
    loadHeatmaps();
    specialisation();
    passages();
  } catch (e) {
    errors.push(String(e && e.stack || e));
  }
  window.addEventListener('resize', function () { charts.forEach(function (c) { c.resize(); }); });
  showErrors();
  document.body.dataset.rendered = String(charts.length);
})();
