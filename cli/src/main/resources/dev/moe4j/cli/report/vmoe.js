// Renders the vmoe experiment's results (embedded as #results): dense ViT against V-MoE and Soft MoE, accuracy
// against capacity in position order and with batch priority routing, and test images with their patches coloured
// by expert and the dropped ones greyed. When done, <body data-rendered="N"> holds the number of charts and image
// grids drawn; errors are listed in #errors and counted in data-errors, as report.js does.
(function () {
  'use strict';
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); showErrors(); });
  var drawn = 0;

  function showErrors() {
    document.getElementById('errors').textContent = errors.join('\n');
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

  function pct(v, digits) {
    return (v === null || v === undefined || Number.isNaN(v)) ? '–' : (100 * v).toFixed(digits === undefined ? 2 : digits) + '%';
  }

  function chart(parent, option) {
    var div = el('div', {'class': 'chart'});
    parent.appendChild(div);
    var c = echarts.init(div, null, {renderer: 'svg'});
    option.animation = false;
    c.setOption(option);
    drawn++;
  }

  function section(title, note) {
    var main = document.querySelector('main');
    main.appendChild(el('h2', {text: title}));
    if (note) { main.appendChild(el('p', {'class': 'note', text: note})); }
    var box = el('div', {'class': 'grid'});
    main.appendChild(box);
    return box;
  }

  function card(parent, title) {
    var c = el('div', {'class': 'card'}, [el('h3', {text: title})]);
    parent.appendChild(c);
    return c;
  }

  // Expert colours, as the language models' report uses for expert ids.
  var COLOURS = ['#2f6fb3', '#c0392b', '#27ae60', '#8e44ad', '#d68910', '#16a085', '#e84393', '#6c5ce7',
    '#00b894', '#b33939', '#0984e3', '#fdcb6e', '#1d232b', '#7f8c8d', '#55efc4', '#a29bfe'];

  var R = JSON.parse(document.getElementById('results').textContent);
  var main = document.querySelector('main');
  main.appendChild(el('h1', {text: 'moe4j experiment vmoe: ' + R.title + (R.quick ? ' (quick)' : '')}));
  main.appendChild(el('p', {'class': 'claim', text: R.claim}));
  var m = R.machine || {};
  main.appendChild(el('p', {'class': 'meta', text: R.train_images + ' training images, ' + R.test_images + ' test images, '
      + R.epochs + ' epochs per run; peak FMA rate ' + (m.peak_gflops || 0).toFixed(1) + ' GFLOP/s on ' + m.threads
      + ' threads; load average ' + (m.load_average_start || 0).toFixed(2) + ' at the start, '
      + (m.load_average_end || 0).toFixed(2) + ' at the end'}));

  function variantsSection() {
    var box = section('Dense ViT, V-MoE and Soft MoE at equal compute per image',
        'Test accuracy of every seed, their mean and standard deviation; training images/s against the peak FMA rate '
        + '(6 FLOPs per forward multiply-add: forward and backward).');
    // The table needs the page's width (long variant names); the charts share the grid below it.
    var c = el('div', {'class': 'card'}, [el('h3', {text: 'Accuracy'})]);
    box.parentNode.insertBefore(c, box);
    var t = el('table');
    t.appendChild(el('tr', {}, ['variant', 'multiply-adds / image', 'accuracy (mean ± std)', 'seeds', 'images/s',
      'of FMA peak'].map(function (h) { return el('th', {text: h}); })));
    R.variants.forEach(function (v) {
      var rates = v.runs.map(function (r) { return r.train_images_per_s; });
      var rate = rates.reduce(function (a, b) { return a + b; }, 0) / rates.length;
      var share = rate * 6 * v.macs_per_image / 1e9 / (m.peak_gflops || NaN);
      t.appendChild(el('tr', {}, [
        el('td', {'class': 'name', style: 'white-space: normal', text: v.name + ': ' + v.description}),
        el('td', {text: (v.macs_per_image / 1e6).toFixed(2) + ' M'}),
        el('td', {text: pct(v.mean_accuracy) + ' ± ' + pct(v.std_accuracy)}),
        el('td', {text: v.runs.map(function (r) { return pct(r.accuracy); }).join(', ')}),
        el('td', {text: rate.toFixed(0)}),
        el('td', {text: pct(share, 1)})]));
    });
    c.appendChild(t);
    var classes = (R.images && R.images.classes) || [];
    var c2 = card(box, 'Accuracy per class (mean over seeds)');
    chart(c2, {
      tooltip: {trigger: 'axis'}, legend: {top: 0}, grid: {left: 50, right: 10, top: 30, bottom: 70},
      xAxis: {type: 'category', data: classes, axisLabel: {rotate: 35}},
      yAxis: {type: 'value', min: 0.4, max: 1, axisLabel: {formatter: function (v) { return Math.round(100 * v) + '%'; }}},
      series: R.variants.map(function (v) {
        return {name: v.name, type: 'bar', data: classes.map(function (_, i) {
          var s = 0; v.runs.forEach(function (r) { s += r.class_accuracy[i]; }); return s / v.runs.length;
        })};
      })
    });
    R.variants.forEach(function (v) {
      var layers = v.runs[0].layers || [];
      // Soft MoE gives every expert its slots whatever the patches: equal shares by construction say nothing.
      var shares = [];
      layers.forEach(function (l) { l.tokens_per_expert.forEach(function (t) { shares.push(t); }); });
      if (!layers.length || Math.max.apply(null, shares) === Math.min.apply(null, shares)) { return; }
      var c3 = card(box, v.name + ': share of patches per expert on the test set (seed ' + v.runs[0].seed + ')');
      chart(c3, {
        tooltip: {trigger: 'axis'}, legend: {top: 0}, grid: {left: 50, right: 10, top: 30, bottom: 30},
        xAxis: {type: 'category', data: layers[0].tokens_per_expert.map(function (_, e) { return 'expert ' + e; })},
        yAxis: {type: 'value', axisLabel: {formatter: function (x) { return (100 * x).toFixed(0) + '%'; }}},
        series: layers.map(function (l) {
          var total = l.tokens_per_expert.reduce(function (a, b) { return a + b; }, 0);
          return {name: 'layer ' + l.layer, type: 'bar', data: l.tokens_per_expert.map(function (x) { return x / total; })};
        })
      });
    });
  }

  function capacitySection() {
    if (!R.capacity) { return; }
    var box = section('V-MoE trained at capacity 1.0, evaluated at lower capacity',
        'Patches claim expert slots in position order (the batch\'s first images first) or by batch priority routing '
        + '(the patches whose top router probability is highest first); the patches that find no slot skip the MoE '
        + 'layer through the residual. Mean over seeds.');
    var orders = ['position', 'batch priority'];
    var factors = [];
    R.capacity.forEach(function (c) { if (factors.indexOf(c.factor) < 0) { factors.push(c.factor); } });
    function at(f, o) { return R.capacity.filter(function (c) { return c.factor === f && c.priority === o; })[0]; }
    var c = card(box, 'Accuracy against capacity factor');
    chart(c, {
      tooltip: {trigger: 'axis'}, legend: {top: 0}, grid: {left: 55, right: 10, top: 30, bottom: 40},
      xAxis: {type: 'category', name: 'capacity factor', nameLocation: 'middle', nameGap: 25, data: factors.map(String)},
      yAxis: {type: 'value', scale: true, axisLabel: {formatter: function (v) { return (100 * v).toFixed(0) + '%'; }}},
      series: orders.map(function (o) {
        return {name: o, type: 'line', data: factors.map(function (f) { return at(f, o).mean_accuracy; })};
      })
    });
    var c2 = card(box, 'Table');
    var t = el('table');
    t.appendChild(el('tr', {}, ['capacity', 'order', 'accuracy (mean ± std)', 'seeds', 'patches processed']
      .map(function (h) { return el('th', {text: h}); })));
    R.capacity.forEach(function (r) {
      t.appendChild(el('tr', {}, [el('td', {text: String(r.factor)}), el('td', {'class': 'name', text: r.priority}),
        el('td', {text: pct(r.mean_accuracy) + ' ± ' + pct(r.std_accuracy)}),
        el('td', {text: r.runs.map(function (x) { return pct(x.accuracy); }).join(', ')}),
        el('td', {text: pct(r.mean_processed_share, 1)})]));
    });
    c2.appendChild(t);
  }

  function drawImage(canvas, pixels, size, experts, grid, layerIndex, scale) {
    var ctx = canvas.getContext('2d');
    var img = ctx.createImageData(size, size);
    for (var p = 0; p < size * size; p++) {
      img.data[4 * p] = img.data[4 * p + 1] = img.data[4 * p + 2] = pixels[p];
      img.data[4 * p + 3] = 255;
    }
    var off = document.createElement('canvas');
    off.width = off.height = size;
    off.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, size * scale, size * scale);
    var patch = size / grid * scale;
    var e = experts[layerIndex];
    for (var q = 0; q < grid * grid; q++) {
      var x = (q % grid) * patch, y = Math.floor(q / grid) * patch;
      if (e[q] < 0) {
        ctx.fillStyle = 'rgba(150,150,150,0.85)';
      } else {
        ctx.fillStyle = COLOURS[e[q] % COLOURS.length];
        ctx.globalAlpha = 0.45;
      }
      ctx.fillRect(x, y, patch, patch);
      ctx.globalAlpha = 1;
      ctx.strokeStyle = 'rgba(255,255,255,0.5)';
      ctx.strokeRect(x + 0.5, y + 0.5, patch - 1, patch - 1);
    }
  }

  function imagesSection() {
    var I = R.images;
    if (!I) { return; }
    var main = document.querySelector('main');
    main.appendChild(el('h2', {text: 'Which patches each expert takes, and which are dropped first'}));
    main.appendChild(el('p', {'class': 'note', text: 'Test images spread over one evaluation batch of ' + I.batch
        + ' (their positions in it: ' + I.batch_positions.join(', ') + '), routed by the first V-MoE model. Each patch '
        + 'is coloured by the expert of largest gate weight that took it; grey patches were dropped (no expert had '
        + 'room). Titles: the true class, then the predicted one where it differs.'}));
    var legend = el('div', {'class': 'legend'});
    for (var e = 0; e < I.experts; e++) {
      legend.appendChild(el('span', {text: 'expert ' + e, style: 'background:' + COLOURS[e % COLOURS.length] + ';color:white'}));
    }
    legend.appendChild(el('span', {text: 'dropped', style: 'background:#969696;color:white'}));
    main.appendChild(legend);
    var layerChoice = el('select');
    I.views[0].layers.forEach(function (l, i) { layerChoice.appendChild(el('option', {value: String(i), text: 'MoE layer ' + l})); });
    main.appendChild(el('div', {'class': 'controls'}, [el('label', {text: 'layer '}), layerChoice]));
    var holder = el('div');
    main.appendChild(holder);
    function render() {
      holder.innerHTML = '';
      var li = Number(layerChoice.value);
      I.views.forEach(function (v) {
        var row = el('div', {'class': 'card'}, [el('h3', {text: 'capacity ' + v.factor + ', ' + v.priority})]);
        var strip = el('div', {style: 'display:flex;flex-wrap:wrap;gap:6px'});
        I.pixels.forEach(function (px, i) {
          var canvas = el('canvas', {width: String(I.size * 3), height: String(I.size * 3)});
          drawImage(canvas, px, I.size, v.experts[i], I.grid, li, 3);
          var label = I.classes[I.labels[i]] + (v.predictions[i] !== I.labels[i] ? ' → ' + I.classes[v.predictions[i]] : '');
          strip.appendChild(el('figure', {style: 'margin:0;font-size:10px;width:' + (I.size * 3) + 'px'},
            [canvas, el('figcaption', {text: label})]));
        });
        row.appendChild(strip);
        holder.appendChild(row);
      });
    }
    layerChoice.addEventListener('change', render);
    render();
    drawn++;
  }

  try {
    variantsSection();
    capacitySection();
    imagesSection();
  } catch (e) {
    errors.push(String(e && e.stack || e));
    showErrors();
  }
  document.body.dataset.rendered = String(drawn);
  showErrors();
})();
